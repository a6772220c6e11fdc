/*
 * Native COBS for roam's byte-stream transport (Node-API, C).
 *
 *   encode(dst, at, a, b?) -> end
 *     COBS-encodes the concatenation of Uint8Arrays a and b (b optional)
 *     into dst starting at offset `at`; returns the offset after the
 *     encoded bytes (no delimiter). dst must have room for
 *     len + len/254 + 1 bytes. A full 254-byte block at the very end of the
 *     input is not followed by an empty block (same as the JS encoder).
 *
 *   decodeInPlace(buf) -> n | -1 | -2
 *     Decodes one frame (delimiter excluded) in place; returns the decoded
 *     length, -1 if the frame contains a zero byte, -2 if a block runs past
 *     the end.
 *
 * Zeros are found with memchr and blocks moved with memcpy/memmove, so the
 * cost is a few memory passes per frame.
 */
#include <node_api.h>
#include <string.h>
#include <stdint.h>

static int typed_bytes(napi_env env, napi_value v, uint8_t** data, size_t* len) {
  napi_typedarray_type type;
  size_t length;
  void* ptr;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &off) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = (uint8_t*)ptr;
  *len = length;
  return 1;
}

static napi_value throw_type(napi_env env, const char* msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value encode(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_type(env, "encode(dst, at, a, b?)");
  uint8_t* dst;
  size_t dst_len;
  if (!typed_bytes(env, argv[0], &dst, &dst_len)) return throw_type(env, "dst must be a Uint8Array");
  int64_t at64;
  if (napi_get_value_int64(env, argv[1], &at64) != napi_ok || at64 < 0) return throw_type(env, "at must be a non-negative integer");
  const uint8_t* parts[2] = {NULL, NULL};
  size_t lens[2] = {0, 0};
  int nparts = 1;
  if (!typed_bytes(env, argv[2], (uint8_t**)&parts[0], &lens[0])) return throw_type(env, "a must be a Uint8Array");
  if (argc >= 4) {
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t != napi_undefined) {
      if (!typed_bytes(env, argv[3], (uint8_t**)&parts[1], &lens[1])) return throw_type(env, "b must be a Uint8Array");
      nparts = 2;
    }
  }
  size_t total = lens[0] + lens[1];
  size_t need = (size_t)at64 + total + total / 254 + 1;
  if (need > dst_len) return throw_type(env, "dst too small for the encoded frame");

  size_t out = (size_t)at64;
  size_t code_pos = out++;
  size_t code = 1;
  size_t remaining = total;
  for (int k = 0; k < nparts; k++) {
    const uint8_t* p = parts[k];
    const uint8_t* end = p + lens[k];
    while (p < end) {
      size_t room = 0xFF - code;
      size_t avail = (size_t)(end - p);
      size_t lim = avail < room ? avail : room;
      const uint8_t* z = (const uint8_t*)memchr(p, 0, lim);
      size_t run = z ? (size_t)(z - p) : lim;
      memcpy(dst + out, p, run);
      out += run;
      code += run;
      p += run;
      remaining -= run;
      if (z) {
        dst[code_pos] = (uint8_t)code;
        code_pos = out++;
        code = 1;
        p++;
        remaining--;
      } else if (code == 0xFF && remaining > 0) {
        dst[code_pos] = 0xFF;
        code_pos = out++;
        code = 1;
      }
    }
  }
  dst[code_pos] = (uint8_t)code;
  napi_value result;
  napi_create_int64(env, (int64_t)out, &result);
  return result;
}

static napi_value decode_in_place(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint8_t* buf;
  size_t n;
  if (argc < 1 || !typed_bytes(env, argv[0], &buf, &n)) return throw_type(env, "decodeInPlace(buf: Uint8Array)");
  int64_t r;
  if (n > 0 && memchr(buf, 0, n) != NULL) {
    r = -1;
  } else {
    size_t i = 0, out = 0;
    r = 0;
    while (i < n) {
      size_t code = buf[i];
      size_t end = i + code;
      if (end > n) {
        r = -2;
        break;
      }
      size_t len = code - 1;
      memmove(buf + out, buf + i + 1, len);
      out += len;
      i = end;
      if (code != 0xFF && i < n) buf[out++] = 0;
    }
    if (r == 0) r = (int64_t)out;
  }
  napi_value result;
  napi_create_int64(env, r, &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"encode", NULL, encode, NULL, NULL, NULL, napi_default, NULL},
      {"decodeInPlace", NULL, decode_in_place, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
