/*
 * Native part of roam's shared-memory transport: map a segment file into
 * memory and hand it to JavaScript as a SharedArrayBuffer.
 *
 * Why a SharedArrayBuffer (V8 API) and not a Node-API external ArrayBuffer:
 * Node 20's Node-API can only wrap foreign memory in a plain ArrayBuffer.
 * Atomics.load/store/compareExchange accept those, but Atomics.wait,
 * Atomics.waitAsync and Atomics.notify do not, and a plain ArrayBuffer cannot
 * be shared with worker threads. V8's SharedArrayBuffer::NewBackingStore
 * wraps foreign memory in a real SharedArrayBuffer, so the segment code is the
 * same for the pure-JS backing (new SharedArrayBuffer) and for this one, and a
 * worker thread of the host can use the mapped segment with Atomics.waitAsync.
 * The price is that this addon uses the V8 API, not the ABI-stable Node-API:
 * it is rebuilt for the Node it runs on (npm ci does that).
 *
 * Growth without moving: the whole address range the segment may ever need
 * (`reserve` bytes) is reserved once with PROT_NONE; the file is mapped
 * MAP_SHARED|MAP_FIXED over its start. Growing the segment maps more of the
 * file into the reserved range, so the base address and the JavaScript
 * object never change. JavaScript only touches offsets below the mapped size.
 *
 * Exports (all synchronous, errors thrown as Error with errno text):
 *   createFile(path, size, mode) -> fd      O_CREAT|O_EXCL, ftruncate(size)
 *   openFile(path) -> [fd, size]            O_RDWR
 *   resizeFile(fd, size)                    ftruncate
 *   fileSize(fd) -> size
 *   closeFd(fd)
 *   map(fd, mapSize, reserveSize) -> SharedArrayBuffer (byteLength = reserveSize)
 *   remap(sab, mapSize)                     map the file up to mapSize (grows only)
 *   mappedSize(sab) -> bytes of the file currently mapped
 *   unmap(sab)                              drop the file mapping (the range reads as zeros)
 *   pageSize() -> number
 *   signal(fd) -> bool                      write one byte to a doorbell (non-blocking;
 *                                           false if the socket buffer is full, i.e.
 *                                           the peer has wake-ups pending anyway)
 */
#include <node.h>
#include <v8.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>

namespace roam_shm {

using v8::Array;
using v8::BackingStore;
using v8::Context;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Object;
using v8::SharedArrayBuffer;
using v8::String;
using v8::Value;

struct Mapping {
  uint8_t* base;
  size_t reserve;
  size_t mapped;  // bytes of the file mapped at base (page multiple)
  int fd;         // not owned: the JS side closes it
  bool live;      // false once unmap() replaced the file pages
};

static std::mutex g_lock;
static std::map<uint8_t*, Mapping>* g_maps = new std::map<uint8_t*, Mapping>();

static size_t page_size() {
  static size_t ps = (size_t)sysconf(_SC_PAGESIZE);
  return ps;
}

static size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

static void Throw(Isolate* isolate, const std::string& what, int err) {
  std::string msg = what + ": " + strerror(err);
  isolate->ThrowException(v8::Exception::Error(String::NewFromUtf8(isolate, msg.c_str()).ToLocalChecked()));
}

static void ThrowMsg(Isolate* isolate, const char* msg) {
  isolate->ThrowException(v8::Exception::TypeError(String::NewFromUtf8(isolate, msg).ToLocalChecked()));
}

static bool ArgNumber(const FunctionCallbackInfo<Value>& args, int i, double* out) {
  if (args.Length() <= i || !args[i]->IsNumber()) return false;
  *out = args[i].As<Number>()->Value();
  return *out >= 0 && *out <= 9007199254740991.0;
}

static void CreateFile(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double size, mode;
  if (args.Length() < 3 || !args[0]->IsString() || !ArgNumber(args, 1, &size) || !ArgNumber(args, 2, &mode)) {
    return ThrowMsg(isolate, "createFile(path, size, mode)");
  }
  String::Utf8Value path(isolate, args[0]);
  int fd = open(*path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
  if (fd < 0) return Throw(isolate, std::string("open ") + *path, errno);
  if (ftruncate(fd, (off_t)size) != 0) {
    int e = errno;
    close(fd);
    unlink(*path);
    return Throw(isolate, "ftruncate", e);
  }
  args.GetReturnValue().Set(Number::New(isolate, fd));
}

static void OpenFile(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  if (args.Length() < 1 || !args[0]->IsString()) return ThrowMsg(isolate, "openFile(path)");
  String::Utf8Value path(isolate, args[0]);
  int fd = open(*path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return Throw(isolate, std::string("open ") + *path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return Throw(isolate, "fstat", e);
  }
  Local<Context> ctx = isolate->GetCurrentContext();
  Local<Array> out = Array::New(isolate, 2);
  out->Set(ctx, 0, Number::New(isolate, fd)).Check();
  out->Set(ctx, 1, Number::New(isolate, (double)st.st_size)).Check();
  args.GetReturnValue().Set(out);
}

static void ResizeFile(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double fd, size;
  if (!ArgNumber(args, 0, &fd) || !ArgNumber(args, 1, &size)) return ThrowMsg(isolate, "resizeFile(fd, size)");
  if (ftruncate((int)fd, (off_t)size) != 0) return Throw(isolate, "ftruncate", errno);
}

static void FileSize(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double fd;
  if (!ArgNumber(args, 0, &fd)) return ThrowMsg(isolate, "fileSize(fd)");
  struct stat st;
  if (fstat((int)fd, &st) != 0) return Throw(isolate, "fstat", errno);
  args.GetReturnValue().Set(Number::New(isolate, (double)st.st_size));
}

static void CloseFd(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double fd;
  if (!ArgNumber(args, 0, &fd)) return ThrowMsg(isolate, "closeFd(fd)");
  if (close((int)fd) != 0) return Throw(isolate, "close", errno);
}

// Called by V8 when the last SharedArrayBuffer over the mapping is gone
// (in every thread it was shared with).
static void ReleaseMapping(void* data, size_t length, void* /*deleter_data*/) {
  uint8_t* base = (uint8_t*)data;
  size_t reserve = 0;
  {
    std::lock_guard<std::mutex> g(g_lock);
    auto it = g_maps->find(base);
    if (it == g_maps->end()) return;
    reserve = it->second.reserve;
    g_maps->erase(it);
  }
  munmap(base, reserve ? reserve : length);
}

static bool MapFilePages(Mapping& m, size_t want) {
  size_t ps = page_size();
  size_t start = m.mapped;  // page multiple
  size_t end = round_up(want, ps);
  if (end <= start) return true;
  if (end > m.reserve) {
    errno = ENOMEM;
    return false;
  }
  void* p = mmap(m.base + start, end - start, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m.fd, (off_t)start);
  if (p == MAP_FAILED) return false;
  m.mapped = end;
  return true;
}

static void Map(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double fd, map_size, reserve;
  if (!ArgNumber(args, 0, &fd) || !ArgNumber(args, 1, &map_size) || !ArgNumber(args, 2, &reserve)) {
    return ThrowMsg(isolate, "map(fd, mapSize, reserveSize)");
  }
  size_t ps = page_size();
  size_t res = round_up((size_t)reserve, ps);
  if ((size_t)map_size > res || res == 0) return ThrowMsg(isolate, "map: mapSize exceeds reserveSize");
  void* base = mmap(nullptr, res, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return Throw(isolate, "mmap (reserve)", errno);
  Mapping m{(uint8_t*)base, res, 0, (int)fd, true};
  if (!MapFilePages(m, (size_t)map_size)) {
    int e = errno;
    munmap(base, res);
    return Throw(isolate, "mmap (file)", e);
  }
  {
    std::lock_guard<std::mutex> g(g_lock);
    (*g_maps)[m.base] = m;
  }
  std::unique_ptr<BackingStore> store = SharedArrayBuffer::NewBackingStore(base, res, ReleaseMapping, nullptr);
  Local<SharedArrayBuffer> sab = SharedArrayBuffer::New(isolate, std::shared_ptr<BackingStore>(std::move(store)));
  args.GetReturnValue().Set(sab);
}

static uint8_t* SabBase(const FunctionCallbackInfo<Value>& args) {
  if (args.Length() < 1 || !args[0]->IsSharedArrayBuffer()) return nullptr;
  return (uint8_t*)args[0].As<SharedArrayBuffer>()->GetBackingStore()->Data();
}

static void Remap(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  uint8_t* base = SabBase(args);
  double size;
  if (!base || !ArgNumber(args, 1, &size)) return ThrowMsg(isolate, "remap(sab, mapSize)");
  std::lock_guard<std::mutex> g(g_lock);
  auto it = g_maps->find(base);
  if (it == g_maps->end() || !it->second.live) return ThrowMsg(isolate, "remap: not a live mapping");
  if (!MapFilePages(it->second, (size_t)size)) return Throw(isolate, "mmap (grow)", errno);
  args.GetReturnValue().Set(Number::New(isolate, (double)it->second.mapped));
}

static void MappedSize(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  uint8_t* base = SabBase(args);
  if (!base) return ThrowMsg(isolate, "mappedSize(sab)");
  std::lock_guard<std::mutex> g(g_lock);
  auto it = g_maps->find(base);
  double v = (it == g_maps->end() || !it->second.live) ? 0 : (double)it->second.mapped;
  args.GetReturnValue().Set(Number::New(isolate, v));
}

static void Unmap(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  uint8_t* base = SabBase(args);
  if (!base) return ThrowMsg(isolate, "unmap(sab)");
  std::lock_guard<std::mutex> g(g_lock);
  auto it = g_maps->find(base);
  if (it == g_maps->end() || !it->second.live) return;
  Mapping& m = it->second;
  // Replace the file pages with private zero pages: the file is released at
  // once, and a stray late access from JavaScript reads zeros instead of
  // crashing the process. The address range itself is freed on GC.
  if (m.mapped > 0) {
    void* p = mmap(m.base, m.mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return Throw(isolate, "mmap (unmap)", errno);
  }
  m.live = false;
  m.fd = -1;
}

static void Signal(const FunctionCallbackInfo<Value>& args) {
  Isolate* isolate = args.GetIsolate();
  double fd;
  if (!ArgNumber(args, 0, &fd)) return ThrowMsg(isolate, "signal(fd)");
  static const char one = 1;
  ssize_t n;
  do {
    n = send((int)fd, &one, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EPIPE && errno != ECONNRESET) {
    return Throw(isolate, "doorbell", errno);
  }
  args.GetReturnValue().Set(n == 1);
}

static void PageSize(const FunctionCallbackInfo<Value>& args) {
  args.GetReturnValue().Set(Number::New(args.GetIsolate(), (double)page_size()));
}

static void Set(Local<Object> exports, Local<Context> context, const char* name, v8::FunctionCallback fn) {
  Isolate* isolate = context->GetIsolate();
  exports
      ->Set(context, String::NewFromUtf8(isolate, name).ToLocalChecked(),
            v8::FunctionTemplate::New(isolate, fn)->GetFunction(context).ToLocalChecked())
      .Check();
}

}  // namespace roam_shm

// Context-aware: loadable from worker threads too.
NODE_MODULE_INIT(/* exports, module, context */) {
  using namespace roam_shm;
  Set(exports, context, "createFile", CreateFile);
  Set(exports, context, "openFile", OpenFile);
  Set(exports, context, "resizeFile", ResizeFile);
  Set(exports, context, "fileSize", FileSize);
  Set(exports, context, "closeFd", CloseFd);
  Set(exports, context, "map", Map);
  Set(exports, context, "remap", Remap);
  Set(exports, context, "mappedSize", MappedSize);
  Set(exports, context, "unmap", Unmap);
  Set(exports, context, "pageSize", PageSize);
  Set(exports, context, "signal", Signal);
}
