#include "backends.h"

#include <ggml-backend.h>
#include <llama.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#ifdef _WIN32
#include <windows.h>
#else
#include <dlfcn.h>
#endif

namespace xguard {
namespace {

namespace fs = std::filesystem;

// ggml's file names for a loadable backend: [lib]ggml-<name>[-<variant>].<so|dll>.
#ifdef _WIN32
constexpr const char* kModulePrefix = "ggml-";
constexpr const char* kModuleExtension = ".dll";
#else
constexpr const char* kModulePrefix = "libggml-";
constexpr const char* kModuleExtension = ".so";
#endif

struct BackendState {
  bool dynamic = false;
  fs::path directory;
  std::string cpu_variant;
  fs::path cpu_module;
  std::string requested_variant;
  std::string error;
};

BackendState g_state;
std::once_flag g_once;

std::string CpuModulePrefix() {
  return std::string(kModulePrefix) + "cpu-";
}

// "libggml-cpu-haswell.so" -> "haswell"; "" for any other file.
std::string VariantOfFile(const fs::path& file) {
  const std::string name = file.filename().u8string();
  const std::string prefix = CpuModulePrefix();
  const std::string extension = kModuleExtension;
  if (name.size() <= prefix.size() + extension.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - extension.size(), extension.size(), extension) != 0) {
    return "";
  }
  return name.substr(prefix.size(), name.size() - prefix.size() - extension.size());
}

std::vector<std::string> VariantsIn(const fs::path& directory) {
  std::vector<std::string> variants;
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string variant = VariantOfFile(it->path());
    if (!variant.empty()) {
      variants.push_back(variant);
    }
  }
  std::sort(variants.begin(), variants.end());
  return variants;
}

std::string JoinVariants(const std::vector<std::string>& variants) {
  if (variants.empty()) {
    return "none";
  }
  std::string joined;
  for (const std::string& variant : variants) {
    joined += (joined.empty() ? "" : ", ") + variant;
  }
  return joined;
}

#ifdef GGML_BACKEND_DL
// Returns the file of the shared object that contains `address` (the addon, or a loaded backend
// module).
fs::path ModulePathOf(const void* address) {
#ifdef _WIN32
  HMODULE module = nullptr;
  const DWORD flags = GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT;
  if (!GetModuleHandleExW(flags, static_cast<LPCWSTR>(address), &module)) {
    return {};
  }
  std::wstring buffer(32768, L'\0');
  const DWORD length = GetModuleFileNameW(module, buffer.data(), static_cast<DWORD>(buffer.size()));
  buffer.resize(length);
  return fs::path(buffer);
#else
  Dl_info info{};
  if (dladdr(address, &info) == 0 || info.dli_fname == nullptr) {
    return {};
  }
  return fs::path(info.dli_fname);
#endif
}

// Non-CPU backend modules (libggml-cuda.so, libggml-vulkan.so, ...) in the addon's folder. The
// shared ggml libraries themselves are not backends.
std::vector<fs::path> GpuModulesIn(const fs::path& directory) {
  std::vector<fs::path> modules;
  const std::string prefix = kModulePrefix;
  std::error_code ec;
  for (fs::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().u8string();
    const bool is_backend = name.compare(0, prefix.size(), prefix) == 0 && it->path().extension() == kModuleExtension &&
                            VariantOfFile(it->path()).empty() && name.compare(0, prefix.size() + 4, prefix + "base") != 0 &&
                            name.compare(0, prefix.size() + 3, prefix + "cpu") != 0;
    if (is_backend) {
      modules.push_back(it->path());
    }
  }
  return modules;
}

// XGUARD_CPU_VARIANT names one CPU module to load instead of the best one; for comparing
// variants and for working around a bad pick.
void LoadRequestedVariant(const fs::path& directory, const std::string& variant) {
  const fs::path file = directory / fs::u8path(CpuModulePrefix() + variant + kModuleExtension);
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    g_state.error = "XGUARD_CPU_VARIANT=" + variant + " names no CPU backend in " + directory.u8string() +
                    " (available: " + JoinVariants(VariantsIn(directory)) + "). Use one of those, or unset it.";
    return;
  }

  // ggml_backend_load refuses a module whose score is 0, that is one needing instructions this
  // CPU lacks, so a wrong name cannot end in SIGILL.
  if (ggml_backend_load(file.u8string().c_str()) == nullptr) {
    g_state.error = "XGUARD_CPU_VARIANT=" + variant + " cannot run here: this CPU lacks instructions that " +
                    file.filename().u8string() + " needs, or the file is damaged. Unset it to use the best variant.";
    return;
  }

  for (const fs::path& module : GpuModulesIn(directory)) {
    ggml_backend_load(module.u8string().c_str());
  }
}

void LoadDynamicBackends() {
  g_state.dynamic = true;
  g_state.directory = ModulePathOf(reinterpret_cast<const void*>(&LoadBackends)).parent_path();
  if (g_state.directory.empty()) {
    g_state.error = "the folder of the xguard addon could not be found, so its CPU backend modules cannot be loaded";
    return;
  }

  const char* requested = std::getenv("XGUARD_CPU_VARIANT");
  if (requested != nullptr && requested[0] != '\0') {
    g_state.requested_variant = requested;
    LoadRequestedVariant(g_state.directory, g_state.requested_variant);
    if (!g_state.error.empty()) {
      return;
    }
  } else {
    ggml_backend_load_all_from_path(g_state.directory.u8string().c_str());
  }

  ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
  if (cpu == nullptr) {
    g_state.error = "no CPU backend in " + g_state.directory.u8string() + " loads on this machine (found: " +
                    JoinVariants(VariantsIn(g_state.directory)) +
                    "). Reinstall xguard-node, or build it from source with `npm rebuild xguard-node --build-from-source`.";
    return;
  }

  // The features function lives in the module that was loaded, so its address names the file.
  g_state.cpu_module = ModulePathOf(ggml_backend_reg_get_proc_address(cpu, "ggml_backend_get_features"));
  g_state.cpu_variant = VariantOfFile(g_state.cpu_module);
}

#endif  // GGML_BACKEND_DL

const char* DeviceTypeName(enum ggml_backend_dev_type type) {
  switch (type) {
    case GGML_BACKEND_DEVICE_TYPE_CPU:
      return "cpu";
    case GGML_BACKEND_DEVICE_TYPE_GPU:
      return "gpu";
    case GGML_BACKEND_DEVICE_TYPE_IGPU:
      return "igpu";
    case GGML_BACKEND_DEVICE_TYPE_ACCEL:
      return "accelerator";
    default:
      return "other";
  }
}

}  // namespace

std::string LoadBackends() {
  std::call_once(g_once, [] {
#ifdef GGML_BACKEND_DL
    LoadDynamicBackends();
#else
    // A source build registers its backends at link time. XGUARD_CPU_BUILD names how its CPU
    // backend was compiled.
    g_state.cpu_variant = XGUARD_CPU_BUILD;
#endif
  });
  return g_state.error;
}

void AddBackendInfo(Napi::Env env, Napi::Object target) {
  target.Set("backendLoading", g_state.dynamic ? "dynamic" : "static");
  target.Set("cpuVariant", g_state.cpu_variant);
  target.Set("cpuModule", g_state.cpu_module.empty() ? env.Null() : Napi::String::New(env, g_state.cpu_module.u8string()));
  target.Set("requestedCpuVariant",
             g_state.requested_variant.empty() ? env.Null() : Napi::String::New(env, g_state.requested_variant));

  Napi::Array variants = Napi::Array::New(env);
  if (g_state.dynamic) {
    for (const std::string& variant : VariantsIn(g_state.directory)) {
      variants.Set(variants.Length(), variant);
    }
  }
  target.Set("cpuVariants", variants);

  Napi::Object features = Napi::Object::New(env);
  ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
  if (cpu != nullptr) {
    auto get_features =
        reinterpret_cast<ggml_backend_get_features_t>(ggml_backend_reg_get_proc_address(cpu, "ggml_backend_get_features"));
    for (ggml_backend_feature* feature = get_features != nullptr ? get_features(cpu) : nullptr;
         feature != nullptr && feature->name != nullptr; ++feature) {
      features.Set(feature->name, feature->value);
    }
  }
  target.Set("cpuFeatures", features);

  Napi::Array backends = Napi::Array::New(env);
  for (size_t i = 0; i < ggml_backend_reg_count(); ++i) {
    ggml_backend_reg_t reg = ggml_backend_reg_get(i);
    Napi::Object backend = Napi::Object::New(env);
    backend.Set("name", ggml_backend_reg_name(reg));

    Napi::Array devices = Napi::Array::New(env);
    for (size_t d = 0; d < ggml_backend_reg_dev_count(reg); ++d) {
      ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, d);
      size_t free_bytes = 0;
      size_t total_bytes = 0;
      ggml_backend_dev_memory(dev, &free_bytes, &total_bytes);

      Napi::Object device = Napi::Object::New(env);
      device.Set("name", ggml_backend_dev_name(dev));
      device.Set("description", ggml_backend_dev_description(dev));
      device.Set("type", DeviceTypeName(ggml_backend_dev_type(dev)));
      device.Set("memoryTotal", static_cast<double>(total_bytes));
      device.Set("memoryFree", static_cast<double>(free_bytes));
      devices.Set(devices.Length(), device);
    }
    backend.Set("devices", devices);
    backends.Set(backends.Length(), backend);
  }
  target.Set("backends", backends);
}

}  // namespace xguard
