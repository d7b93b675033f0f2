#include "log.h"

#include <mutex>
#include <string>

#include "llama.h"

namespace xguard {
namespace {

struct LogLine {
  ggml_log_level level;
  std::string text;
};

std::mutex g_mutex;
Napi::ThreadSafeFunction g_callback;
bool g_has_callback = false;
int g_min_level = GGML_LOG_LEVEL_WARN;
ggml_log_level g_last_level = GGML_LOG_LEVEL_INFO;
std::string g_pending;  // text of the current line until its newline arrives
thread_local LogCapture* t_capture = nullptr;
thread_local ggml_log_level t_last_level = GGML_LOG_LEVEL_INFO;

const char* LevelName(ggml_log_level level) {
  switch (level) {
    case GGML_LOG_LEVEL_DEBUG: return "debug";
    case GGML_LOG_LEVEL_INFO: return "info";
    case GGML_LOG_LEVEL_WARN: return "warn";
    case GGML_LOG_LEVEL_ERROR: return "error";
    default: return "info";
  }
}

// Runs on the JS thread for each complete line.
void DeliverLine(Napi::Env env, Napi::Function callback, LogLine* line) {
  if (env != nullptr && callback != nullptr) {
    callback.Call({Napi::String::New(env, LevelName(line->level)), Napi::String::New(env, line->text)});
  }
  delete line;
}

// Called by llama.cpp on any thread. A message may arrive in several pieces: the pieces are
// joined and sent one line at a time, and GGML_LOG_LEVEL_CONT continues the previous level.
void OnLlamaLog(ggml_log_level level, const char* text, void* /*user_data*/) {
  if (text == nullptr) {
    return;
  }
  if (t_capture != nullptr) {
    if (level != GGML_LOG_LEVEL_CONT) {
      t_last_level = level;
    }
    if (t_last_level >= GGML_LOG_LEVEL_WARN) {
      t_capture->Append(text);
    }
  }

  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_has_callback) {
    return;
  }
  if (level != GGML_LOG_LEVEL_CONT) {
    g_last_level = level;
  }
  if (g_last_level < g_min_level) {
    return;
  }

  g_pending += text;
  size_t newline;
  while ((newline = g_pending.find('\n')) != std::string::npos) {
    auto* line = new LogLine{g_last_level, g_pending.substr(0, newline)};
    g_pending.erase(0, newline + 1);
    if (g_callback.NonBlockingCall(line, DeliverLine) != napi_ok) {
      delete line;
    }
  }
}

}  // namespace

LogCapture::LogCapture() : previous_(t_capture) {
  t_capture = this;
}

LogCapture::~LogCapture() {
  t_capture = previous_;
}

void LogCapture::Append(const char* text) {
  // Bounded, so a chatty failure cannot grow an error message without limit.
  if (text_.size() < 4096) {
    text_ += text;
  }
}

void InstallLogHook() {
  llama_log_set(OnLlamaLog, nullptr);
}

void ReleaseLogger() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_has_callback) {
    g_callback.Release();
    g_has_callback = false;
  }
  g_pending.clear();
}

Napi::Value SetLogger(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ReleaseLogger();

  if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
    return env.Undefined();
  }
  if (!info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "setLogger: callback must be a function or null");
  }

  int min_level = GGML_LOG_LEVEL_WARN;
  if (info.Length() > 1 && info[1].IsNumber()) {
    min_level = info[1].As<Napi::Number>().Int32Value();
  }

  auto callback = Napi::ThreadSafeFunction::New(env, info[0].As<Napi::Function>(), "xguard.log", 0, 1);
  // A log hook must never keep the process alive on its own.
  callback.Unref(env);

  std::lock_guard<std::mutex> lock(g_mutex);
  g_callback = callback;
  g_has_callback = true;
  g_min_level = min_level;
  return env.Undefined();
}

}  // namespace xguard
