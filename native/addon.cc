// Module entry: initializes the llama.cpp backend once per process and exports the API.
#include <napi.h>

#include <mutex>

#include "backends.h"
#include "context.h"
#include "errors.h"
#include "heap.h"
#include "log.h"
#include "model.h"

namespace xguard {
namespace {

std::once_flag g_log_once;
std::once_flag g_init_once;

// systemInfo(): { system, maxDevices, supportsMmap, supportsGpuOffload, backendLoading, cpuVariant,
//   cpuModule, requestedCpuVariant, cpuVariants, cpuFeatures, backends }
Napi::Value SystemInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("system", llama_print_system_info());
  result.Set("maxDevices", static_cast<double>(llama_max_devices()));
  result.Set("supportsMmap", llama_supports_mmap());
  result.Set("supportsGpuOffload", llama_supports_gpu_offload());
  AddBackendInfo(env, result);
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  std::call_once(g_log_once, [] { InstallLogHook(); });

  // Backends load before anything else touches llama.cpp: without a CPU backend every model
  // load would fail, so the addon itself refuses to load with the reason.
  const std::string backend_error = LoadBackends();
  if (!backend_error.empty()) {
    ThrowError(env, "ERR_BACKEND", backend_error);
  }
  std::call_once(g_init_once, [] { llama_backend_init(); });
  env.AddCleanupHook([] { ReleaseLogger(); });

  exports.Set("Model", Model::Init(env));
  exports.Set("Context", Context::Init(env));
  exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
  exports.Set("setLogger", Napi::Function::New(env, SetLogger, "setLogger"));
  exports.Set("systemInfo", Napi::Function::New(env, SystemInfo, "systemInfo"));
  exports.Set("heapInUse", Napi::Function::New(env, HeapInUse, "heapInUse"));
  return exports;
}

}  // namespace
}  // namespace xguard

static Napi::Object InitXGuard(Napi::Env env, Napi::Object exports) {
  return xguard::Init(env, exports);
}

NODE_API_MODULE(xguard, InitXGuard)
