// Routes llama.cpp and ggml log output to a JavaScript callback. Silent until a callback is set.
#pragma once

#include <napi.h>

#include <string>

namespace xguard {

// setLogger(callback: ((level: string, line: string) => void) | null, minLevel: number): void
Napi::Value SetLogger(const Napi::CallbackInfo& info);

// Installs the llama.cpp log hook. Called once when the addon loads.
void InstallLogHook();

// Releases the JS callback so it cannot outlive the environment.
void ReleaseLogger();

// While alive, collects the warning and error lines llama.cpp logs on the current thread, so a
// failed load can report llama.cpp's own reason.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  const std::string& text() const { return text_; }
  void Append(const char* text);

 private:
  std::string text_;
  LogCapture* previous_;
};

}  // namespace xguard
