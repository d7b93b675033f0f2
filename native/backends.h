// Finds and loads llama.cpp's compute backends. A source build links its CPU backend into the
// addon. A prebuilt addon (GGML_BACKEND_DL) ships the CPU backend as one module per
// instruction-set level beside xguard.node and loads the best one this CPU can run.
#pragma once

#include <napi.h>

#include <string>

namespace xguard {

// Loads the backends once per process. Returns an empty string, or the reason no CPU backend
// could be used. The addon then fails to load, because every model load would fail later anyway.
std::string LoadBackends();

// Adds the backend part of systemInfo(): how backends are loaded, the CPU variant in use, its
// features, and every registered backend with its devices.
void AddBackendInfo(Napi::Env env, Napi::Object target);

}  // namespace xguard
