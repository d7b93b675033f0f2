// The JS `Context` class: a llama_context owned by one worker thread, which runs the batch
// scheduler. JS only queues requests and reads finished results; the worker thread never
// touches a JS value.
#pragma once

#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "handles.h"
#include "request.h"
#include "scheduler.h"

namespace xguard {

struct ContextOptions {
  uint32_t n_ctx = 4096;
  uint32_t n_batch = 512;
  int32_t n_threads = 0;  // 0: the number of hardware threads
  int flash_attn = LLAMA_FLASH_ATTN_TYPE_AUTO;
  SchedulerOptions scheduler;
};

// One request from submission to settlement. The deferred promise and the event callback are
// touched only on the JS thread.
struct Job {
  uint64_t id = 0;   // the caller's id, for abort()
  uint64_t key = 0;  // unique within the context
  EvaluateRequest request;
  Napi::Promise::Deferred deferred;
  Napi::FunctionReference on_event;
  bool closed = false;  // rejected because the context was disposed, not by its caller

  explicit Job(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

// A report of a streaming request before it finishes.
struct StreamEvent {
  std::shared_ptr<Job> job;
  bool first = false;  // the first distribution, or else one generated token
  Distribution distribution;
  llama_token token = -1;
};

class Context : public Napi::ObjectWrap<Context>, private SchedulerSink {
 public:
  static Napi::Function Init(Napi::Env env);
  // Creates the llama_context on a worker thread and resolves with a JS Context.
  static Napi::Value CreateAsync(Napi::Env env, SharedModel model, Napi::Value model_object, Napi::Object options);

  explicit Context(const Napi::CallbackInfo& info);
  ~Context() override;

 private:
  Napi::Value Evaluate(const Napi::CallbackInfo& info);
  Napi::Value Abort(const Napi::CallbackInfo& info);
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // SchedulerSink, on the worker thread.
  void OnFirstDistribution(const std::shared_ptr<void>& owner, EvaluateRequest* request) override;
  void OnToken(const std::shared_ptr<void>& owner, EvaluateRequest* request) override;
  void OnFinished(std::shared_ptr<void> owner, EvaluateRequest* request) override;

  // Hands a stream event to the JS thread, which calls the request's onEvent. Takes ownership.
  void SendStreamEvent(StreamEvent* event);
  void WorkerLoop();
  static bool AbortDecode(void* data);
  // Registered with std::atexit: stops every worker thread before C++ globals are destroyed.
  static void StopAllWorkersAtExit();
  // Runs on the JS thread when a job finishes.
  void Settle(Napi::Env env, std::shared_ptr<Job> job);
  void OnWorkerExit(Napi::Env env);
  void HoldLoop(Napi::Env env);
  void ReleaseLoop(Napi::Env env);
  void StopWorker();

  std::unique_ptr<Scheduler> scheduler_;
  ContextOptions options_;
  int32_t n_vocab_ = 0;
  Napi::ObjectReference model_object_;  // keeps the JS model alive while this context lives

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;                 // submitted, not yet given to the scheduler
  std::map<uint64_t, std::shared_ptr<Job>> in_scheduler_;  // given to the scheduler, by key
  uint64_t next_key_ = 1;
  SchedulerStats stats_;                                   // copied after each step
  bool closing_ = false;
  std::atomic<bool> abort_decode_{false};

  Napi::ThreadSafeFunction to_js_;
  bool to_js_released_ = false;
  uint32_t loop_holds_ = 0;  // JS thread only: pending jobs, plus one while a dispose is running
  bool disposed_ = false;    // JS thread only
  std::unique_ptr<Napi::Promise::Deferred> dispose_deferred_;
};

}  // namespace xguard
