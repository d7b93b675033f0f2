#include "context.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>

#include "errors.h"
#include "js-values.h"
#include "log.h"

namespace xguard {
namespace {

Napi::FunctionReference* g_context_constructor = nullptr;

// Contexts whose worker thread is running. process.exit() runs the C++ exit handlers without
// tearing the JS environment down, so the worker could still be inside llama_decode while
// ggml's globals are destroyed. An exit handler stops every worker first.
std::mutex g_live_mutex;
std::set<Context*> g_live_contexts;
std::atomic<bool> g_exiting{false};
std::once_flag g_exit_handler_after_create;
std::once_flag g_exit_handler_after_decode;

// The result of CreateContextWorker, handed to the Context constructor through an External.
struct ContextInit {
  std::unique_ptr<Scheduler> scheduler;
  ContextOptions options;
};

class CreateContextWorker : public Napi::AsyncWorker {
 public:
  CreateContextWorker(Napi::Env env, SharedModel model, Napi::Value model_object, ContextOptions options)
      : Napi::AsyncWorker(env, "xguard.createContext"),
        model_(std::move(model)),
        model_object_(Napi::Persistent(model_object.As<Napi::Object>())),
        options_(options),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    llama_context_params params = llama_context_default_params();
    params.n_ctx = options_.n_ctx;
    params.n_batch = options_.n_batch;
    params.n_ubatch = options_.n_batch;
    // Request sequences first, then one per prefix cache entry.
    params.n_seq_max = options_.scheduler.n_slots + options_.scheduler.cache_entries;
    // A batch has at most one output per request, so the logits buffer needs n_slots rows, not
    // n_batch (311 MB for a 512-token batch and a 151,936-token vocabulary). llama.cpp asserts
    // that this bound is at least n_seq_max.
    params.n_outputs_max = params.n_seq_max;
    params.n_threads = options_.n_threads;
    params.n_threads_batch = options_.n_threads;
    params.flash_attn_type = static_cast<llama_flash_attn_type>(options_.flash_attn);
    // One KV buffer for all sequences, so llama_memory_seq_cp shares cells instead of copying.
    params.kv_unified = true;
    params.no_perf = true;

    LogCapture capture;
    llama_context* context = nullptr;
    try {
      context = llama_init_from_model(model_.get(), params);
    } catch (const std::exception& error) {
      error_ = error.what();
      return;
    }
    if (context == nullptr) {
      error_ = capture.text().empty() ? "llama_init_from_model returned no context" : capture.text();
      return;
    }
    init_ = std::make_unique<ContextInit>();
    init_->options = options_;
    init_->scheduler = std::make_unique<Scheduler>(model_, ContextPtr(context), options_.scheduler);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!init_) {
      std::string message = "failed to create a llama context (n_ctx " + std::to_string(options_.n_ctx) +
                            ", n_batch " + std::to_string(options_.n_batch) + "): " + error_ +
                            "; try a smaller contextSize or batchSize";
      deferred_.Reject(MakeError(env, "ERR_CONTEXT_CREATE", message).Value());
      return;
    }
    try {
      Napi::Object context = g_context_constructor->New({
          Napi::External<ContextInit>::New(env, init_.get()),
          model_object_.Value(),
      });
      deferred_.Resolve(context);
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  SharedModel model_;
  Napi::ObjectReference model_object_;
  ContextOptions options_;
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<ContextInit> init_;
  std::string error_;
};

Napi::Object DistributionToJs(Napi::Env env, const Distribution& distribution) {
  Napi::Object step = Napi::Object::New(env);
  step.Set("argmax", distribution.argmax);

  Napi::Int32Array top_tokens = Napi::Int32Array::New(env, distribution.top.size());
  Napi::Float64Array top_logprobs = Napi::Float64Array::New(env, distribution.top.size());
  for (size_t i = 0; i < distribution.top.size(); ++i) {
    top_tokens[i] = distribution.top[i].token;
    top_logprobs[i] = distribution.top[i].logprob;
  }
  step.Set("topTokens", top_tokens);
  step.Set("topLogprobs", top_logprobs);

  Napi::Float64Array tracked = Napi::Float64Array::New(env, distribution.tracked.size());
  for (size_t i = 0; i < distribution.tracked.size(); ++i) {
    tracked[i] = distribution.tracked[i].logprob;
  }
  step.Set("trackedLogprobs", tracked);
  return step;
}

Napi::Object ResultToJs(Napi::Env env, const EvaluateRequest& request) {
  Napi::Object result = Napi::Object::New(env);
  Napi::Array steps = Napi::Array::New(env, request.steps.size());
  for (size_t i = 0; i < request.steps.size(); ++i) {
    steps.Set(static_cast<uint32_t>(i), DistributionToJs(env, request.steps[i]));
  }
  result.Set("steps", steps);
  result.Set("generated", ToInt32Array(env, request.generated));
  if (request.reference) {
    Napi::Float32Array logits = Napi::Float32Array::New(env, request.logits.size());
    std::memcpy(logits.Data(), request.logits.data(), request.logits.size() * sizeof(float));
    result.Set("logits", logits);
  }
  result.Set("promptTokens", static_cast<double>(request.tokens.size()));
  result.Set("reusedTokens", request.n_reused);
  result.Set("decodedTokens", request.n_decoded);
  result.Set("stopReason", StopReasonName(request.stop_reason));
  result.Set("queueMs", request.queue_ms);
  result.Set("promptMs", request.prompt_ms);
  result.Set("generateMs", request.generate_ms);
  result.Set("batchPeak", request.batch_peak);
  return result;
}

bool ReadBoolOption(Napi::Env env, const Napi::Object& object, const char* key) {
  Napi::Value value = object.Get(key);
  if (value.IsUndefined() || value.IsNull()) {
    return false;
  }
  if (!value.IsBoolean()) {
    ThrowError(env, "ERR_INVALID_OPTION", std::string(key) + " must be a boolean");
  }
  return value.As<Napi::Boolean>().Value();
}

}  // namespace

void Context::StopAllWorkersAtExit() {
  g_exiting.store(true);
  std::vector<Context*> live;
  {
    std::lock_guard<std::mutex> lock(g_live_mutex);
    live.assign(g_live_contexts.begin(), g_live_contexts.end());
  }
  for (Context* context : live) {
    {
      std::lock_guard<std::mutex> lock(context->mutex_);
      context->closing_ = true;
    }
    context->abort_decode_.store(true);
    context->wake_.notify_all();
    if (context->thread_.joinable()) {
      context->thread_.join();
    }
  }
}

Napi::Function Context::Init(Napi::Env env) {
  Napi::Function constructor = DefineClass(env, "Context", {
      InstanceMethod<&Context::Evaluate>("evaluate"),
      InstanceMethod<&Context::Abort>("abort"),
      InstanceMethod<&Context::Info>("info"),
      InstanceMethod<&Context::Dispose>("dispose"),
  });
  g_context_constructor = new Napi::FunctionReference(Napi::Persistent(constructor));
  env.AddCleanupHook([] {
    delete g_context_constructor;
    g_context_constructor = nullptr;
  });
  return constructor;
}

Napi::Value Context::CreateAsync(Napi::Env env, SharedModel model, Napi::Value model_object, Napi::Object options) {
  const int32_t n_ctx_train = llama_model_n_ctx_train(model.get());
  Napi::Value context_size = options.Get("contextSize");
  if (context_size.IsNumber() && context_size.As<Napi::Number>().DoubleValue() > n_ctx_train) {
    ThrowError(env, "ERR_INVALID_OPTION",
               "Invalid contextSize " + context_size.ToString().Utf8Value() + ": this model was trained for " +
                   std::to_string(n_ctx_train) + " tokens; use at most that.");
  }
  ContextOptions parsed;
  parsed.n_ctx = static_cast<uint32_t>(ReadIntOption(env, options, "contextSize", std::min(4096, n_ctx_train), 64, std::max(64, n_ctx_train)));
  parsed.n_batch = static_cast<uint32_t>(ReadIntOption(env, options, "batchSize", std::min<int32_t>(512, static_cast<int32_t>(parsed.n_ctx)), 1, static_cast<int32_t>(parsed.n_ctx)));
  parsed.n_threads = ReadIntOption(env, options, "threads", 0, 0, 1024);
  parsed.flash_attn = ReadIntOption(env, options, "flashAttention", LLAMA_FLASH_ATTN_TYPE_AUTO, -1, 1);
  parsed.scheduler.n_slots = static_cast<uint32_t>(ReadIntOption(env, options, "parallel", 8, 1, 64));
  parsed.scheduler.cache_entries = static_cast<uint32_t>(ReadIntOption(env, options, "prefixCacheEntries", 32, 0, 128));
  parsed.scheduler.cache_cells = static_cast<uint32_t>(
      ReadIntOption(env, options, "prefixCacheCells", static_cast<int32_t>(parsed.n_ctx / 2), 0, static_cast<int32_t>(parsed.n_ctx)));
  if (parsed.scheduler.n_slots > parsed.n_batch) {
    ThrowError(env, "ERR_INVALID_OPTION",
               "parallel (" + std::to_string(parsed.scheduler.n_slots) + ") must not exceed batchSize (" +
                   std::to_string(parsed.n_batch) + "), because each running request needs a place in every batch");
  }
  if (parsed.n_threads == 0) {
    parsed.n_threads = static_cast<int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  }

  auto* worker = new CreateContextWorker(env, std::move(model), model_object, parsed);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Context::Context(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Context>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsExternal() || !info[1].IsObject()) {
    throw Napi::TypeError::New(env, "Context cannot be constructed directly; use model.createContext()");
  }
  ContextInit* init = info[0].As<Napi::External<ContextInit>>().Data();
  scheduler_ = std::move(init->scheduler);
  options_ = init->options;
  options_.n_ctx = scheduler_->n_ctx();
  options_.n_batch = scheduler_->n_batch();
  n_vocab_ = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(scheduler_->context())));
  model_object_ = Napi::Persistent(info[1].As<Napi::Object>());
  llama_set_abort_callback(scheduler_->context(), &Context::AbortDecode, this);

  to_js_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "xguard.context", 0, 1);
  // An idle context must not keep the process alive; HoldLoop takes a reference while work is pending.
  to_js_.Unref(env);

  {
    std::lock_guard<std::mutex> lock(g_live_mutex);
    g_live_contexts.insert(this);
  }
  // Exit handlers run in reverse order of registration, and ggml creates some of its globals on
  // first use (the CPU backend's extra buffer types, for one). Registering after a context was
  // created, and again after the first decode, makes the handler run before their destructors.
  std::call_once(g_exit_handler_after_create, [] { std::atexit(&Context::StopAllWorkersAtExit); });
  thread_ = std::thread([this] { WorkerLoop(); });
}

Context::~Context() {
  StopWorker();
  std::lock_guard<std::mutex> lock(g_live_mutex);
  g_live_contexts.erase(this);
}

bool Context::AbortDecode(void* data) {
  return static_cast<Context*>(data)->abort_decode_.load();
}

// Stops the worker without waiting on JS: used when the object is collected or the
// environment shuts down without dispose().
void Context::StopWorker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
    queue_.clear();
  }
  abort_decode_.store(true);
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
  if (!to_js_released_) {
    to_js_.Release();
    to_js_released_ = true;
  }
}

void Context::WorkerLoop() {
  while (true) {
    std::deque<std::shared_ptr<Job>> submitted;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return closing_ || !queue_.empty() || scheduler_->HasWork(); });
      if (closing_) {
        break;
      }
      submitted.swap(queue_);
      for (const auto& job : submitted) {
        in_scheduler_[job->key] = job;
      }
    }
    for (auto& job : submitted) {
      EvaluateRequest* request = &job->request;
      scheduler_->Submit(std::move(job), request);
    }

    scheduler_->Step(*this);

    std::lock_guard<std::mutex> lock(mutex_);
    stats_ = scheduler_->stats();
    if (stats_.steps > 0) {
      std::call_once(g_exit_handler_after_decode, [] { std::atexit(&Context::StopAllWorkersAtExit); });
    }
  }

  // Requests still in the scheduler end here; the llama_context is freed off the JS thread.
  scheduler_->FailAll(*this, "ERR_CLOSED", "the guard was closed before the request finished");
  scheduler_.reset();

  bool notify_js = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    notify_js = dispose_deferred_ != nullptr && !g_exiting.load();
  }
  if (notify_js) {
    to_js_.BlockingCall([this](Napi::Env env, Napi::Function) {
      if (env != nullptr) {
        OnWorkerExit(env);
      }
    });
  }
}

void Context::SendStreamEvent(StreamEvent* event) {
  if (g_exiting.load()) {
    delete event;
    return;
  }
  napi_status status = to_js_.BlockingCall(event, [](Napi::Env env, Napi::Function, StreamEvent* data) {
    std::unique_ptr<StreamEvent> event(data);
    if (env == nullptr || event->job->on_event.IsEmpty()) {
      return;
    }
    Napi::HandleScope scope(env);
    Napi::Object object = Napi::Object::New(env);
    if (event->first) {
      object.Set("type", "first");
      object.Set("distribution", DistributionToJs(env, event->distribution));
    } else {
      object.Set("type", "token");
      object.Set("token", event->token);
    }
    event->job->on_event.Call({object});
  });
  if (status != napi_ok) {
    delete event;
  }
}

void Context::OnFirstDistribution(const std::shared_ptr<void>& owner, EvaluateRequest* request) {
  SendStreamEvent(new StreamEvent{std::static_pointer_cast<Job>(owner), true, request->steps.front(), -1});
}

void Context::OnToken(const std::shared_ptr<void>& owner, EvaluateRequest* request) {
  SendStreamEvent(new StreamEvent{std::static_pointer_cast<Job>(owner), false, Distribution(), request->generated.back()});
}

void Context::OnFinished(std::shared_ptr<void> owner, EvaluateRequest* /*request*/) {
  auto job = std::static_pointer_cast<Job>(std::move(owner));
  {
    // The snapshot is refreshed before JS hears of the result, so stats() read in the
    // promise's handler already counts this request as finished.
    std::lock_guard<std::mutex> lock(mutex_);
    in_scheduler_.erase(job->key);
    stats_ = scheduler_->stats();
  }
  if (g_exiting.load()) {
    // The process is exiting: JS will not run again, so the job is left for the OS to reclaim.
    new std::shared_ptr<Job>(std::move(job));
    return;
  }
  auto* payload = new std::shared_ptr<Job>(std::move(job));
  napi_status status = to_js_.BlockingCall(payload, [this](Napi::Env env, Napi::Function, std::shared_ptr<Job>* done) {
    if (env != nullptr) {
      Settle(env, *done);
    }
    delete done;
  });
  if (status != napi_ok) {
    delete payload;
  }
}

// napi_ref_threadsafe_function is a switch, not a count, so this class counts its references.
void Context::HoldLoop(Napi::Env env) {
  if (loop_holds_++ == 0) {
    to_js_.Ref(env);
    Ref();
  }
}

void Context::ReleaseLoop(Napi::Env env) {
  if (--loop_holds_ == 0) {
    if (!to_js_released_) {
      to_js_.Unref(env);
    }
    Unref();
  }
}

void Context::Settle(Napi::Env env, std::shared_ptr<Job> job) {
  Napi::HandleScope scope(env);
  const EvaluateRequest& request = job->request;
  if (job->closed) {
    job->deferred.Reject(MakeError(env, "ERR_CLOSED", "the guard was closed before the request finished").Value());
  } else if (!request.error_code.empty()) {
    job->deferred.Reject(MakeError(env, request.error_code, request.error_message).Value());
  } else {
    try {
      job->deferred.Resolve(ResultToJs(env, request));
    } catch (const Napi::Error& error) {
      job->deferred.Reject(error.Value());
    }
  }
  job->on_event.Reset();
  ReleaseLoop(env);
}

void Context::OnWorkerExit(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (thread_.joinable()) {
    thread_.join();
  }
  std::unique_ptr<Napi::Promise::Deferred> deferred;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    deferred = std::move(dispose_deferred_);
  }
  if (!to_js_released_) {
    to_js_.Release();
    to_js_released_ = true;
  }
  {
    std::lock_guard<std::mutex> lock(g_live_mutex);
    g_live_contexts.erase(this);
  }
  model_object_.Reset();
  if (deferred) {
    deferred->Resolve(env.Undefined());
  }
  ReleaseLoop(env);  // taken in Dispose
}

// evaluate(request: { tokens: Int32Array, topK?: number, tracked?: Int32Array, maxNewTokens?: number,
//   allSteps?: boolean, stopTokens?: Int32Array, reference?: boolean, id?: number,
//   onEvent?: (event) => void }): Promise<EvaluateResult>
Napi::Value Context::Evaluate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto job = std::make_shared<Job>(env);
  Napi::Promise promise = job->deferred.Promise();

  try {
    if (disposed_) {
      ThrowError(env, "ERR_CLOSED", "the context was disposed; create a new one");
    }
    if (info.Length() < 1 || !info[0].IsObject()) {
      ThrowError(env, "ERR_INVALID_INPUT", "evaluate: the request must be an object");
    }
    Napi::Object object = info[0].As<Napi::Object>();
    EvaluateRequest& request = job->request;

    request.tokens = ReadTokenArray(env, object.Get("tokens"), n_vocab_, "tokens");
    if (request.tokens.empty()) {
      ThrowError(env, "ERR_INVALID_INPUT", "evaluate: tokens is empty; pass at least one token");
    }
    if (request.tokens.size() > options_.n_ctx) {
      ThrowError(env, "ERR_CONTEXT_OVERFLOW",
                 "the prompt has " + std::to_string(request.tokens.size()) + " tokens but the context holds " +
                     std::to_string(options_.n_ctx) + "; shorten the input or use a larger contextSize");
    }
    request.top_k = ReadIntOption(env, object, "topK", 10, 0, n_vocab_);
    if (!object.Get("tracked").IsUndefined()) {
      request.tracked = ReadTokenArray(env, object.Get("tracked"), n_vocab_, "tracked");
    }
    if (!object.Get("stopTokens").IsUndefined()) {
      request.stop_tokens = ReadTokenArray(env, object.Get("stopTokens"), n_vocab_, "stopTokens");
    }
    // Generation also stops when the sequence fills the context, so no tighter bound is needed.
    request.max_new_tokens = ReadIntOption(env, object, "maxNewTokens", 0, 0, 1 << 24);
    request.all_steps = ReadBoolOption(env, object, "allSteps");
    request.reference = ReadBoolOption(env, object, "reference");
    Napi::Value on_event = object.Get("onEvent");
    if (on_event.IsFunction()) {
      job->on_event = Napi::Persistent(on_event.As<Napi::Function>());
      request.stream = true;
    } else if (!on_event.IsUndefined()) {
      ThrowError(env, "ERR_INVALID_OPTION", "onEvent must be a function");
    }
    Napi::Value id = object.Get("id");
    if (id.IsNumber()) {
      job->id = static_cast<uint64_t>(id.As<Napi::Number>().Int64Value());
    }
  } catch (const Napi::Error& error) {
    job->deferred.Reject(error.Value());
    return promise;
  }

  HoldLoop(env);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job->key = next_key_++;
    queue_.push_back(job);
  }
  wake_.notify_one();
  return promise;
}

// abort(id: number): boolean. A request not yet given to the scheduler is rejected at once;
// one in the scheduler stops before its next decode step. Returns false when no request has that id.
Napi::Value Context::Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowError(env, "ERR_INVALID_INPUT", "abort: id must be a number");
  }
  const auto id = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());

  std::shared_ptr<Job> removed;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find_if(queue_.begin(), queue_.end(), [id](const std::shared_ptr<Job>& job) { return job->id == id; });
    if (it != queue_.end()) {
      removed = *it;
      queue_.erase(it);
      found = true;
    } else {
      for (auto& [key, job] : in_scheduler_) {
        if (job->id == id) {
          job->request.abort.store(true);
          found = true;
        }
      }
    }
  }
  wake_.notify_one();
  if (removed) {
    removed->deferred.Reject(MakeError(env, "ERR_ABORTED", "the request was aborted").Value());
    removed->on_event.Reset();
    ReleaseLoop(env);
  }
  return Napi::Boolean::New(env, found);
}

// info(): { contextSize, batchSize, threads, parallel, queued, active, waiting, disposed,
//   steps, decodedTokens, completed, prefixCache: { hits, misses, evictions, entries, cells, reusedTokens, cellBudget } }
Napi::Value Context::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("contextSize", options_.n_ctx);
  result.Set("batchSize", options_.n_batch);
  result.Set("threads", options_.n_threads);
  result.Set("parallel", options_.scheduler.n_slots);
  result.Set("disposed", disposed_);

  std::lock_guard<std::mutex> lock(mutex_);
  result.Set("queued", static_cast<double>(queue_.size() + stats_.waiting));
  result.Set("active", stats_.active);
  result.Set("steps", static_cast<double>(stats_.steps));
  result.Set("decodedTokens", static_cast<double>(stats_.decoded_tokens));
  result.Set("completed", static_cast<double>(stats_.completed));

  Napi::Object cache = Napi::Object::New(env);
  cache.Set("hits", static_cast<double>(stats_.cache.hits));
  cache.Set("misses", static_cast<double>(stats_.cache.misses));
  cache.Set("evictions", static_cast<double>(stats_.cache.evictions));
  cache.Set("entries", stats_.cache.entries);
  cache.Set("cells", stats_.cache.cells);
  cache.Set("reusedTokens", static_cast<double>(stats_.cache.reused_tokens));
  cache.Set("cellBudget", options_.scheduler.cache_cells);
  cache.Set("maxEntries", options_.scheduler.cache_entries);
  result.Set("prefixCache", cache);
  return result;
}

// dispose(): Promise<void>. Rejects queued requests with ERR_CLOSED, stops running ones at the
// current decode step, frees the llama_context on the worker thread, and resolves when it has exited.
Napi::Value Context::Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (disposed_) {
    Napi::Promise::Deferred done = Napi::Promise::Deferred::New(env);
    done.Resolve(env.Undefined());
    return done.Promise();
  }
  disposed_ = true;

  std::deque<std::shared_ptr<Job>> rejected;
  auto deferred = std::make_unique<Napi::Promise::Deferred>(Napi::Promise::Deferred::New(env));
  Napi::Promise promise = deferred->Promise();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
    rejected.swap(queue_);
    for (auto& [key, job] : in_scheduler_) {
      job->closed = true;
    }
    dispose_deferred_ = std::move(deferred);
  }
  abort_decode_.store(true);
  // Held until OnWorkerExit, so the process waits for the worker to finish.
  HoldLoop(env);
  wake_.notify_all();

  for (auto& job : rejected) {
    job->closed = true;
    job->deferred.Reject(MakeError(env, "ERR_CLOSED", "the guard was closed before the request started").Value());
    job->on_event.Reset();
    ReleaseLoop(env);
  }
  return promise;
}

}  // namespace xguard
