#include "heap.h"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define XGUARD_HAVE_MALLINFO2 1
#endif

namespace xguard {

Napi::Value HeapInUse(const Napi::CallbackInfo& info) {
#ifdef XGUARD_HAVE_MALLINFO2
  // uordblks: bytes in use inside the arenas; hblkhd: large blocks malloc mapped on their own.
  const struct mallinfo2 stats = mallinfo2();
  return Napi::Number::New(info.Env(), static_cast<double>(stats.uordblks + stats.hblkhd));
#else
  return info.Env().Null();
#endif
}

}  // namespace xguard
