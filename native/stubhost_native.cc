// stubhost's native addon: the few things JavaScript cannot do.
//   - map a POSIX shared-memory file as a SharedArrayBuffer (so Atomics work on it across processes)
//   - futex wait/wake on an Int32 word of such a buffer (Atomics.wait only sees waiters in-process)
//   - a Watcher thread that futex-waits for a word to change and wakes the event loop, so that
//     neither process blocks its event loop while the other side is quiet
//   - a doorbell: an eventfd the peer writes to wake this side's event loop, watched with uv_poll
//     on the loop itself (no thread, nothing to arm per wait)
//   - prctl(PR_SET_PDEATHSIG) so a stub dies with its host even when the host is SIGKILLed
// Everything else (queues, semaphores, arenas) is TypeScript on top.
#include <napi.h>
#include <v8.h>

#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace {

// Shared (not FUTEX_PRIVATE) futexes: the waiter and the waker are in different processes.
long FutexWait(int32_t* addr, int32_t expected, const struct timespec* timeout) {
  return syscall(SYS_futex, addr, FUTEX_WAIT, expected, timeout, nullptr, 0);
}

long FutexWake(int32_t* addr, int32_t count) {
  return syscall(SYS_futex, addr, FUTEX_WAKE, count, nullptr, nullptr, 0);
}

struct timespec MsToTimespec(double ms) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms - ts.tv_sec * 1000.0) * 1e6);
  return ts;
}

Napi::Value ThrowErrno(Napi::Env env, const std::string& what) {
  std::string msg = what + ": " + strerror(errno);
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("errno", Napi::Number::New(env, errno));
  err.ThrowAsJavaScriptException();
  return env.Undefined();
}

// Wraps an mmap'd range as a SharedArrayBuffer; the mapping lives until V8 frees the backing store.
Napi::Value MapAsSharedArrayBuffer(Napi::Env env, void* ptr, size_t len) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::unique_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(
      ptr, len, [](void* data, size_t length, void*) { munmap(data, length); }, nullptr);
  v8::Local<v8::SharedArrayBuffer> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  napi_value result;
  static_assert(sizeof(v8::Local<v8::Value>) == sizeof(napi_value), "napi_value layout");
  v8::Local<v8::Value> as_value = sab;
  memcpy(&result, &as_value, sizeof(result));
  return Napi::Value(env, result);
}

int32_t* WordAddress(const Napi::CallbackInfo& info, size_t arg) {
  // (sab, byteOffset) → address; range-checked so JS cannot point us outside the buffer.
  Napi::Env env = info.Env();
  napi_value sab = info[arg];
  void* data = nullptr;
  size_t len = 0;
  bool is_sab = false;
  v8::Local<v8::Value> v;
  memcpy(&v, &sab, sizeof(sab));
  is_sab = v->IsSharedArrayBuffer();
  if (!is_sab) {
    Napi::TypeError::New(env, "expected a SharedArrayBuffer").ThrowAsJavaScriptException();
    return nullptr;
  }
  std::shared_ptr<v8::BackingStore> store = v.As<v8::SharedArrayBuffer>()->GetBackingStore();
  data = store->Data();
  len = store->ByteLength();
  int64_t offset = info[arg + 1].As<Napi::Number>().Int64Value();
  if (offset < 0 || offset % 4 != 0 || static_cast<size_t>(offset) + 4 > len) {
    Napi::RangeError::New(env, "futex word offset out of range or unaligned").ThrowAsJavaScriptException();
    return nullptr;
  }
  return reinterpret_cast<int32_t*>(static_cast<char*>(data) + offset);
}

// shmCreate(name, size): O_EXCL, mode 0600; the caller unlinks once the peer has mapped it.
Napi::Value ShmCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int64_t size = info[1].As<Napi::Number>().Int64Value();
  if (size <= 0) {
    Napi::RangeError::New(env, "shared-memory size must be positive").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) return ThrowErrno(env, "shm_open(" + name + ")");
  if (ftruncate(fd, size) != 0) {
    int saved = errno;
    close(fd);
    shm_unlink(name.c_str());
    errno = saved;
    return ThrowErrno(env, "ftruncate(" + name + ")");
  }
  // ftruncate only sets the size: on a full tmpfs the first write to a page then raises SIGBUS,
  // which kills the process. Reserving the pages (when asked: arena segments stay sparse and are
  // populated as they are used, see ShmPopulate) turns "no room in /dev/shm" into ENOSPC.
  bool reserve = info.Length() < 3 || info[2].ToBoolean().Value();
  int reserved = reserve ? posix_fallocate(fd, 0, size) : 0;
  if (reserved != 0) {
    close(fd);
    shm_unlink(name.c_str());
    errno = reserved;
    return ThrowErrno(env, "posix_fallocate(" + name + ")");
  }
  void* ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int saved = errno;
  close(fd);
  if (ptr == MAP_FAILED) {
    shm_unlink(name.c_str());
    errno = saved;
    return ThrowErrno(env, "mmap(" + name + ")");
  }
  return MapAsSharedArrayBuffer(env, ptr, size);
}

// shmPopulate(sab, byteOffset, length): byteOffset page-aligned; backs the pages of a range of a sparse mapping with tmpfs
// pages now (MADV_POPULATE_WRITE), so a full /dev/shm is an error code here instead of a SIGBUS
// at the first write. Returns 0 or an errno (EFAULT / ENOMEM: no room). Kernels before 5.14 lack
// the advice (EINVAL): 0 is returned and the range stays lazily backed.
Napi::Value ShmPopulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  v8::Local<v8::Value> v;
  napi_value arg = info[0];
  memcpy(&v, &arg, sizeof(arg));
  if (!v->IsSharedArrayBuffer()) {
    Napi::TypeError::New(env, "expected a SharedArrayBuffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::shared_ptr<v8::BackingStore> store = v.As<v8::SharedArrayBuffer>()->GetBackingStore();
  size_t len = store->ByteLength();
  int64_t offset = info[1].As<Napi::Number>().Int64Value();
  int64_t length = info[2].As<Napi::Number>().Int64Value();
  if (offset < 0 || length < 0 || static_cast<size_t>(offset + length) > len) {
    Napi::RangeError::New(env, "shmPopulate: range outside the buffer").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (length == 0) return Napi::Number::New(env, 0);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t start = reinterpret_cast<uintptr_t>(store->Data()) + offset;
  uintptr_t end = start + length;
  start &= ~(page - 1);
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  int rc = madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
  int err = rc == 0 ? 0 : errno;
  if (err == EINVAL) return Napi::Number::New(env, 0);
  // A failed populate keeps the pages it did get: give them back, or they are lost to everyone
  // sharing /dev/shm. The caller passes a page-aligned start, so no page in use is removed.
  if (err != 0) madvise(reinterpret_cast<void*>(start), end - start, MADV_REMOVE);
  return Napi::Number::New(env, err);
}

// shmOpen(name): maps the whole file; its size comes from fstat.
Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  int fd = shm_open(name.c_str(), O_RDWR, 0600);
  if (fd < 0) return ThrowErrno(env, "shm_open(" + name + ")");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return ThrowErrno(env, "fstat(" + name + ")");
  }
  if (st.st_size <= 0) {
    close(fd);
    Napi::Error::New(env, "shared-memory file " + name + " is empty").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  void* ptr = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int saved = errno;
  close(fd);
  if (ptr == MAP_FAILED) {
    errno = saved;
    return ThrowErrno(env, "mmap(" + name + ")");
  }
  return MapAsSharedArrayBuffer(env, ptr, st.st_size);
}

// shmUnlink(name) → true if removed, false if it was already gone.
Napi::Value ShmUnlink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  if (shm_unlink(name.c_str()) == 0) return Napi::Boolean::New(env, true);
  if (errno == ENOENT) return Napi::Boolean::New(env, false);
  return ThrowErrno(env, "shm_unlink(" + name + ")");
}

// futexWait(sab, byteOffset, expected, timeoutMs) → 0 woken, 1 value differed, 2 timed out.
// Blocks the calling thread: only for places where nothing else is pending.
Napi::Value FutexWaitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* addr = WordAddress(info, 0);
  if (addr == nullptr) return env.Undefined();
  int32_t expected = info[2].As<Napi::Number>().Int32Value();
  double ms = info[3].As<Napi::Number>().DoubleValue();
  struct timespec ts = MsToTimespec(ms < 0 ? 0 : ms);
  long rc = FutexWait(addr, expected, ms >= 0 ? &ts : nullptr);
  if (rc == 0) return Napi::Number::New(env, 0);
  if (errno == EAGAIN) return Napi::Number::New(env, 1);
  if (errno == ETIMEDOUT) return Napi::Number::New(env, 2);
  if (errno == EINTR) return Napi::Number::New(env, 0);  // spurious: callers re-check the word
  return ThrowErrno(env, "futex wait");
}

Napi::Value FutexWakeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* addr = WordAddress(info, 0);
  if (addr == nullptr) return env.Undefined();
  int32_t count = info[2].As<Napi::Number>().Int32Value();
  long rc = FutexWake(addr, count);
  if (rc < 0) return ThrowErrno(env, "futex wake");
  return Napi::Number::New(env, static_cast<double>(rc));
}

Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int sig = info[0].As<Napi::Number>().Int32Value();
  if (prctl(PR_SET_PDEATHSIG, sig) != 0) return ThrowErrno(env, "prctl(PR_SET_PDEATHSIG)");
  return Napi::Number::New(env, getppid());
}

// Watcher: one thread per watched word. arm(expected, timeoutMs) makes the thread wait until the
// word differs from `expected` (or the timeout passes) and then call the JS callback once, on the
// event loop, with 0 = changed, 2 = timed out, 3 = closed. The JS side owns the "waiters" count
// that tells the peer a futex wake is needed; this thread only sleeps.
class Watcher : public Napi::ObjectWrap<Watcher> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Watcher",
                       {InstanceMethod("arm", &Watcher::Arm), InstanceMethod("close", &Watcher::Close),
                        InstanceMethod("ref", &Watcher::Ref), InstanceMethod("unref", &Watcher::Unref)});
  }

  explicit Watcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Watcher>(info) {
    Napi::Env env = info.Env();
    addr_ = WordAddress(info, 0);
    if (addr_ == nullptr) return;
    // Keep the buffer alive as long as the thread may touch it.
    buffer_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "stubhost-watcher", 0, 1);
    tsfn_.Unref(env);
    thread_ = std::thread([this] { Run(); });
  }

  ~Watcher() override { Shutdown(); }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait(lock, [this] { return armed_ || closing_; });
      if (closing_) break;
      int32_t expected = expected_;
      double timeout_ms = timeout_ms_;
      lock.unlock();
      int result = WaitForChange(expected, timeout_ms);
      lock.lock();
      armed_ = false;
      if (closing_) result = 3;
      int* payload = new int(result);
      napi_status st = tsfn_.NonBlockingCall(payload, [](Napi::Env env, Napi::Function cb, int* data) {
        int value = *data;
        delete data;
        if (env == nullptr || cb == nullptr) return;
        // Raw call: during environment teardown JS cannot run and the call fails quietly; an
        // exception thrown by the callback becomes an uncaught exception, as for any JS callback.
        napi_value arg, result, global;
        napi_create_int32(env, value, &arg);
        napi_get_global(env, &global);
        if (napi_call_function(env, global, cb, 1, &arg, &result) == napi_pending_exception) {
          napi_value error;
          napi_get_and_clear_last_exception(env, &error);
          napi_fatal_exception(env, error);
        }
      });
      if (st != napi_ok) delete payload;
      if (closing_) break;
    }
  }

  int WaitForChange(int32_t expected, double timeout_ms) {
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (true) {
      if (__atomic_load_n(addr_, __ATOMIC_SEQ_CST) != expected) return 0;
      if (closing_flag_.load()) return 3;
      double remaining = 250;  // re-check closing at least this often
      if (timeout_ms >= 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (now.tv_sec - start.tv_sec) * 1000.0 + (now.tv_nsec - start.tv_nsec) / 1e6;
        double left = timeout_ms - elapsed;
        if (left <= 0) return 2;
        if (left < remaining) remaining = left;
      }
      struct timespec ts = MsToTimespec(remaining);
      FutexWait(addr_, expected, &ts);
    }
  }

  Napi::Value Arm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_ || addr_ == nullptr) {
      Napi::Error::New(env, "watcher is closed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (armed_) {
      Napi::Error::New(env, "watcher is already armed").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    expected_ = info[0].As<Napi::Number>().Int32Value();
    timeout_ms_ = info.Length() > 1 ? info[1].As<Napi::Number>().DoubleValue() : -1;
    armed_ = true;
    cv_.notify_one();
    return env.Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (!closed_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (!closed_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    if (closed_ || addr_ == nullptr) return;
    closed_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
      closing_flag_.store(true);
      cv_.notify_one();
    }
    // The thread re-checks closing within 250 ms even without a wake; wake it now. A wake on the
    // shared word may also wake the peer's waiters: they treat it as spurious and re-check.
    FutexWake(addr_, INT32_MAX);
    if (thread_.joinable()) thread_.join();
    tsfn_.Release();
    buffer_ref_.Reset();
  }

  int32_t* addr_ = nullptr;
  Napi::ObjectReference buffer_ref_;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;
  bool closing_ = false;
  bool closed_ = false;
  std::atomic<bool> closing_flag_{false};
  int32_t expected_ = 0;
  double timeout_ms_ = -1;
};

// ---- doorbell ---------------------------------------------------------------------------
// eventfdCreate() → a non-blocking, close-on-exec eventfd (the listening side's doorbell).
Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return ThrowErrno(env, "eventfd");
  return Napi::Number::New(env, fd);
}

bool IsEventfd(int fd) {
  char link[64];
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, link, sizeof(link) - 1);
  if (n < 0) return false;
  link[n] = 0;
  return strcmp(link, "anon_inode:[eventfd]") == 0;
}

// bellAdopt(fd, closeOriginal) → our own close-on-exec copy of the peer's doorbell, checked to be
// an eventfd (a wrong number must not have us write into some other file). Closed by bellClose,
// or when this environment (a worker thread) ends.
struct AdoptedBell {
  napi_env env;
  int fd;
};
std::mutex adopted_mu;
std::map<int, AdoptedBell*> adopted;

void CloseAtCleanup(void* arg) {
  AdoptedBell* bell = static_cast<AdoptedBell*>(arg);
  {
    std::lock_guard<std::mutex> lock(adopted_mu);
    adopted.erase(bell->fd);
  }
  close(bell->fd);
  delete bell;
}

Napi::Value BellAdopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool close_original = info[1].ToBoolean().Value();
  if (!IsEventfd(fd)) {
    Napi::Error::New(env, "doorbell fd " + std::to_string(fd) + " is not an eventfd").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC)");
  if (close_original) close(fd);
  AdoptedBell* bell = new AdoptedBell{env, own};
  {
    std::lock_guard<std::mutex> lock(adopted_mu);
    adopted[own] = bell;
  }
  napi_add_env_cleanup_hook(env, CloseAtCleanup, bell);
  return Napi::Number::New(env, own);
}

// bellClose(fd): closes a doorbell fd bellAdopt returned (or one eventfdCreate made).
Napi::Value BellClose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  AdoptedBell* bell = nullptr;
  {
    std::lock_guard<std::mutex> lock(adopted_mu);
    auto it = adopted.find(fd);
    if (it != adopted.end()) {
      bell = it->second;
      adopted.erase(it);
    }
  }
  if (bell != nullptr) {
    napi_remove_env_cleanup_hook(bell->env, CloseAtCleanup, bell);
    delete bell;
  }
  if (fd >= 0) close(fd);
  return env.Undefined();
}

// bellRing(fd): adds 1 to the eventfd's counter (it becomes readable). EAGAIN: the counter is
// at its maximum, so it is readable already.
Napi::Value BellRing(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint64_t one = 1;
  while (write(fd, &one, sizeof(one)) < 0) {
    if (errno == EINTR) continue;
    if (errno == EAGAIN) break;
    return ThrowErrno(env, "doorbell write");
  }
  return env.Undefined();
}

// Doorbell(fd, onRing): watches the eventfd on this thread's event loop (uv_poll). Readable →
// read it (clears the counter) → onRing(). Clearing before the callback is what makes a ring
// that comes while the callback runs make the fd readable again instead of being lost.
// Unref'd by default; close() stops watching (the fd is closed once libuv lets go of it).
class Doorbell : public Napi::ObjectWrap<Doorbell> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Doorbell",
                       {InstanceMethod("close", &Doorbell::Close), InstanceMethod("ref", &Doorbell::Ref),
                        InstanceMethod("unref", &Doorbell::Unref)});
  }

  explicit Doorbell(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Doorbell>(info) {
    Napi::Env env = info.Env();
    env_ = env;
    int fd = info[0].As<Napi::Number>().Int32Value();
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = std::make_unique<Napi::AsyncContext>(env, "stubhost-doorbell");
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      Napi::Error::New(env, "no event loop").ThrowAsJavaScriptException();
      return;
    }
    poll_ = new Poll();
    poll_->owner = this;
    poll_->fd = fd;
    int rc = uv_poll_init(loop, &poll_->handle, fd);
    if (rc != 0) {
      delete poll_;
      poll_ = nullptr;
      Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(rc)).ThrowAsJavaScriptException();
      return;
    }
    poll_->handle.data = poll_;
    uv_poll_start(&poll_->handle, UV_READABLE, OnReadable);
    uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    napi_add_async_cleanup_hook(env, OnEnvCleanup, this, &cleanup_);
  }

  ~Doorbell() override { Shutdown(nullptr); }

 private:
  struct Poll {
    uv_poll_t handle;
    Doorbell* owner;
    int fd;
    napi_async_cleanup_hook_handle cleanup = nullptr;
  };

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    Poll* poll = static_cast<Poll*>(handle->data);
    uint64_t count;
    while (read(poll->fd, &count, sizeof(count)) < 0 && errno == EINTR) {
    }
    Doorbell* self = poll->owner;
    if (self == nullptr) return;
    Napi::Env env = self->env_;
    Napi::HandleScope scope(env);
    napi_value result;
    napi_status st = napi_make_callback(env, *self->context_, self->Value(), self->callback_.Value(), 0, nullptr, &result);
    if (st == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }

  static void OnClosed(uv_handle_t* handle) {
    Poll* poll = static_cast<Poll*>(handle->data);
    close(poll->fd);
    if (poll->cleanup != nullptr) napi_remove_async_cleanup_hook(poll->cleanup);
    delete poll;
  }

  // The environment ends (a worker thread stops) with the doorbell open: let go of the handle
  // asynchronously, as libuv needs, and tell Node when it is done.
  static void OnEnvCleanup(napi_async_cleanup_hook_handle handle, void* arg) {
    static_cast<Doorbell*>(arg)->Shutdown(handle);
  }

  void Shutdown(napi_async_cleanup_hook_handle env_hook) {
    if (poll_ == nullptr) {
      if (env_hook != nullptr) napi_remove_async_cleanup_hook(env_hook);
      return;
    }
    Poll* poll = poll_;
    poll_ = nullptr;
    poll->owner = nullptr;
    // Closed by us: our hook is not needed any more; closed by the environment: Node's handle
    // is removed once libuv has let go.
    if (env_hook == nullptr) {
      if (cleanup_ != nullptr) napi_remove_async_cleanup_hook(cleanup_);
    } else {
      poll->cleanup = env_hook;
    }
    cleanup_ = nullptr;
    uv_poll_stop(&poll->handle);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll->handle), OnClosed);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown(nullptr);
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&poll_->handle));
    return info.Env().Undefined();
  }

  napi_env env_ = nullptr;
  Poll* poll_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;
  Napi::FunctionReference callback_;
  std::unique_ptr<Napi::AsyncContext> context_;
};

// getNofileLimit() → { soft, hard }: RLIMIT_NOFILE, so the host can size its connection caps
// (Infinity for RLIM_INFINITY).
Napi::Value GetNofileLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return ThrowErrno(env, "getrlimit(RLIMIT_NOFILE)");
  auto num = [&](rlim_t v) {
    return Napi::Number::New(env, v == RLIM_INFINITY ? INFINITY : static_cast<double>(v));
  };
  Napi::Object out = Napi::Object::New(env);
  out.Set("soft", num(rl.rlim_cur));
  out.Set("hard", num(rl.rlim_max));
  return out;
}

// setNofileSoftLimit(n): raises (or lowers) the soft RLIMIT_NOFILE to n, at most the hard limit.
// Returns the soft limit now in force.
Napi::Value SetNofileSoftLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return ThrowErrno(env, "getrlimit(RLIMIT_NOFILE)");
  double want = info[0].As<Napi::Number>().DoubleValue();
  rlim_t target = want >= static_cast<double>(rl.rlim_max) ? rl.rlim_max : static_cast<rlim_t>(want < 0 ? 0 : want);
  rl.rlim_cur = target;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return ThrowErrno(env, "setrlimit(RLIMIT_NOFILE)");
  return Napi::Number::New(env, target == RLIM_INFINITY ? INFINITY : static_cast<double>(target));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("shmCreate", Napi::Function::New(env, ShmCreate));
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen));
  exports.Set("shmPopulate", Napi::Function::New(env, ShmPopulate));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink));
  exports.Set("futexWait", Napi::Function::New(env, FutexWaitJs));
  exports.Set("futexWake", Napi::Function::New(env, FutexWakeJs));
  exports.Set("setParentDeathSignal", Napi::Function::New(env, SetParentDeathSignal));
  exports.Set("Watcher", Watcher::Init(env));
  exports.Set("Doorbell", Doorbell::Init(env));
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate));
  exports.Set("bellAdopt", Napi::Function::New(env, BellAdopt));
  exports.Set("bellRing", Napi::Function::New(env, BellRing));
  exports.Set("bellClose", Napi::Function::New(env, BellClose));
  exports.Set("getNofileLimit", Napi::Function::New(env, GetNofileLimit));
  exports.Set("setNofileSoftLimit", Napi::Function::New(env, SetNofileSoftLimit));
  return exports;
}

}  // namespace

NODE_API_MODULE(stubhost_native, Init)
