// The C heap's bytes in use, for leak checks that RSS is too coarse for: glibc keeps freed
// memory in its per-thread arenas, so RSS moves by tens of MiB with no leak at all.
#pragma once

#include <napi.h>

namespace xguard {

// heapInUse(): number | null. Bytes allocated with malloc and not yet freed, over every arena;
// null where the C library cannot report it (anything but glibc 2.33 or newer).
Napi::Value HeapInUse(const Napi::CallbackInfo& info);

}  // namespace xguard
