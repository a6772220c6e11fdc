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
 *   decodeStream(src, start, end, dst, state) -> consumed
 *     Resumable decoder for a byte stream of delimited frames: decodes
 *     src[start, end) into dst at state[2], stopping after the first
 *     delimiter. state (Int32Array) = [bytes left in the current block,
 *     1 if a zero is due before the next block, output position, status];
 *     status is set to 0 (input used up inside a frame), 1 (a frame ended:
 *     its delimiter was consumed) or 2 (malformed: a delimiter inside a
 *     block; consumed through it, state reset for the next frame).
 *     dst must have room for end - start bytes past the output position
 *     (one input byte never yields more than one output byte).
 *
 * The encoder scans and copies in one pass (AVX2 where the CPU has it); the
 * decoder finds the next delimiter with one memchr and copies blocks with
 * fixed-size moves. Either way a frame costs about one pass over its bytes.
 */
#include <node_api.h>
#include <string.h>
#include <stdint.h>

/*
 * Copies one decoded block of n <= 254 bytes. When both sides have 256 bytes
 * of slack it copies a constant 256 (straight-line vector moves, no call);
 * the extra bytes land past the output position, where later output
 * overwrites them.
 */
static inline void copy_block(uint8_t* dst, size_t dst_room, const uint8_t* src, size_t src_room, size_t n) {
  if (dst_room >= 256 && src_room >= 256)
    memcpy(dst, src, 256);
  else
    memcpy(dst, src, n);
}

/*
 * Copies src[0, n) to dst until the first zero byte; returns how many bytes
 * precede it (n if none). Scans and copies in one pass, a vector at a time;
 * bytes after the zero may be written too (up to what src holds past it,
 * never past src_room), where later output overwrites them.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
__attribute__((target("avx2"))) static size_t copy_until_zero_avx2(uint8_t* dst, const uint8_t* src, size_t n) {
  size_t i = 0;
  const __m256i zero = _mm256_setzero_si256();
  for (; i + 64 <= n; i += 64) {
    __m256i a = _mm256_loadu_si256((const __m256i*)(src + i));
    __m256i b = _mm256_loadu_si256((const __m256i*)(src + i + 32));
    _mm256_storeu_si256((__m256i*)(dst + i), a);
    _mm256_storeu_si256((__m256i*)(dst + i + 32), b);
    __m256i za = _mm256_cmpeq_epi8(a, zero);
    __m256i zb = _mm256_cmpeq_epi8(b, zero);
    if (!_mm256_testz_si256(_mm256_or_si256(za, zb), _mm256_or_si256(za, zb))) {
      unsigned ma = (unsigned)_mm256_movemask_epi8(za);
      if (ma != 0) return i + (size_t)__builtin_ctz(ma);
      return i + 32 + (size_t)__builtin_ctz((unsigned)_mm256_movemask_epi8(zb));
    }
  }
  for (; i + 32 <= n; i += 32) {
    __m256i v = _mm256_loadu_si256((const __m256i*)(src + i));
    _mm256_storeu_si256((__m256i*)(dst + i), v);
    unsigned m = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero));
    if (m != 0) return i + (size_t)__builtin_ctz(m);
  }
  if (i < n && n >= 32) {
    /* The tail as one vector overlapping bytes already copied (and known
       to be non-zero), instead of a byte loop. */
    size_t base = n - 32;
    __m256i v = _mm256_loadu_si256((const __m256i*)(src + base));
    _mm256_storeu_si256((__m256i*)(dst + base), v);
    unsigned m = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero));
    return m != 0 ? base + (size_t)__builtin_ctz(m) : n;
  }
  for (; i < n; i++) {
    uint8_t c = src[i];
    if (c == 0) return i;
    dst[i] = c;
  }
  return n;
}
static int have_avx2 = -1;
#endif

static size_t copy_until_zero(uint8_t* dst, const uint8_t* src, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
  if (have_avx2 < 0) have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
  if (have_avx2) return copy_until_zero_avx2(dst, src, n);
#endif
  const uint8_t* z = (const uint8_t*)memchr(src, 0, n);
  size_t run = z ? (size_t)(z - src) : n;
  memcpy(dst, src, run);
  return run;
}

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
      size_t run = copy_until_zero(dst + out, p, lim);
      int found_zero = run < lim;
      out += run;
      code += run;
      p += run;
      remaining -= run;
      if (found_zero) {
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

static napi_value decode_stream(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return throw_type(env, "decodeStream(src, start, end, dst, state)");
  uint8_t* src;
  size_t src_len;
  uint8_t* dst;
  size_t dst_len;
  if (!typed_bytes(env, argv[0], &src, &src_len)) return throw_type(env, "src must be a Uint8Array");
  if (!typed_bytes(env, argv[3], &dst, &dst_len)) return throw_type(env, "dst must be a Uint8Array");
  int64_t start, end;
  if (napi_get_value_int64(env, argv[1], &start) != napi_ok || napi_get_value_int64(env, argv[2], &end) != napi_ok ||
      start < 0 || end < start || (size_t)end > src_len)
    return throw_type(env, "start/end outside src");
  napi_typedarray_type st_type;
  size_t st_len;
  void* st_ptr;
  napi_value st_ab;
  size_t st_off;
  if (napi_get_typedarray_info(env, argv[4], &st_type, &st_len, &st_ptr, &st_ab, &st_off) != napi_ok || st_type != napi_int32_array || st_len < 4)
    return throw_type(env, "state must be an Int32Array(4)");
  int32_t* state = (int32_t*)st_ptr;
  if (state[0] < 0 || state[0] > 254 || state[2] < 0 || (size_t)state[2] > dst_len || dst_len - (size_t)state[2] < (size_t)(end - start))
    return throw_type(env, "bad state or dst too small");

  size_t left = (size_t)state[0];
  int zero_due = state[1] != 0;
  size_t out = (size_t)state[2];
  int status = 0;
  size_t i = (size_t)start;
  const size_t stop = (size_t)end;
  size_t zero_at = 0; /* position of the next zero at or after i, once searched */
  int searched = 0;
  while (i < stop) {
    if (left == 0) {
      uint8_t code = src[i++];
      if (code == 0) {
        status = 1;
        zero_due = 0;
        break;
      }
      if (zero_due) dst[out++] = 0;
      left = (size_t)code - 1;
      zero_due = code != 0xFF;
    } else {
      /* The next zero is found once (memchr) and every block before it is a
       * plain memcpy. */
      if (!searched || zero_at < i) {
        searched = 1;
        const uint8_t* z = (const uint8_t*)memchr(src + i, 0, stop - i);
        zero_at = z ? (size_t)(z - src) : stop;
      }
      size_t avail = zero_at - i;
      size_t n = left < avail ? left : avail;
      copy_block(dst + out, dst_len - out, src + i, src_len - i, n);
      out += n;
      i += n;
      left -= n;
      if (left > 0 && i < stop) {
        /* A delimiter where block data was expected: the frame is cut short. */
        i++;
        status = 2;
        left = 0;
        zero_due = 0;
        break;
      }
    }
  }
  state[0] = (int32_t)left;
  state[1] = zero_due;
  state[2] = (int32_t)out;
  state[3] = status;
  napi_value result;
  napi_create_int64(env, (int64_t)(i - (size_t)start), &result);
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"encode", NULL, encode, NULL, NULL, NULL, napi_default, NULL},
      {"decodeStream", NULL, decode_stream, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
