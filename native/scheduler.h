// The batch scheduler: one llama_context serves many requests at once. Each step packs the
// next token of every generating request and prompt chunks of the others into one
// llama_decode call, across sequence ids of a unified KV cache. New requests join between
// steps. Everything here runs on the context's worker thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "handles.h"
#include "prefix-cache.h"
#include "request.h"

namespace xguard {

struct SchedulerOptions {
  uint32_t n_slots = 8;           // requests decoded together at most
  uint32_t cache_entries = 32;    // prefix cache entries at most
  uint32_t cache_cells = 2048;    // KV cells the prefix cache may hold once its requests are gone
};

struct SchedulerStats {
  PrefixCacheStats cache;
  uint32_t active = 0;      // requests holding a sequence
  uint32_t waiting = 0;     // requests admitted but waiting for a slot or a shared prefix
  uint64_t steps = 0;       // llama_decode calls
  uint64_t decoded_tokens = 0;
  uint64_t completed = 0;
};

// Receives what the scheduler produces. Called on the worker thread.
class SchedulerSink {
 public:
  virtual ~SchedulerSink() = default;
  // The first distribution of a streaming request is ready (request->steps[0]).
  virtual void OnFirstDistribution(const std::shared_ptr<void>& owner, EvaluateRequest* request) = 0;
  // A streaming request generated a token (request->generated.back()).
  virtual void OnToken(const std::shared_ptr<void>& owner, EvaluateRequest* request) = 0;
  // The request finished, failed or was aborted. The scheduler holds no reference after this.
  virtual void OnFinished(std::shared_ptr<void> owner, EvaluateRequest* request) = 0;
};

class Scheduler {
 public:
  Scheduler(SharedModel model, ContextPtr context, SchedulerOptions options);

  // Takes a request. `owner` keeps it alive and is handed back through the sink.
  void Submit(std::shared_ptr<void> owner, EvaluateRequest* request);

  bool HasWork() const { return !active_.empty() || !waiting_.empty(); }

  // Runs one decode step, or one reference request. Returns after reporting to the sink.
  void Step(SchedulerSink& sink);

  // Fails every request with `code` and frees their sequences.
  void FailAll(SchedulerSink& sink, const char* code, const std::string& message);

  SchedulerStats stats() const;
  uint32_t n_ctx() const { return n_ctx_; }
  uint32_t n_batch() const { return n_batch_; }
  llama_context* context() const { return context_.get(); }

 private:
  enum class Phase { Prefill, Generating };

  struct Slot {
    std::shared_ptr<void> owner;
    EvaluateRequest* request = nullptr;
    llama_seq_id seq = -1;
    Phase phase = Phase::Prefill;
    size_t n_past = 0;            // tokens of this sequence in the KV cache
    llama_token pending = -1;     // generated token still to decode
    int32_t output = -1;          // index of this slot's output in the current batch
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point prompt_done;
  };

  struct Waiting {
    std::shared_ptr<void> owner;
    EvaluateRequest* request;
    std::chrono::steady_clock::time_point submitted;
  };

  void Admit();
  // Starts a request in a free sequence, copying the longest cached or running prefix.
  // Returns false when it should wait for a running request to decode a shared prefix.
  bool Start(Waiting& waiting);
  void RunReference(Waiting waiting, SchedulerSink& sink);
  // Handles the logits of one slot after a decode; returns true when the request is done.
  bool Advance(Slot& slot, SchedulerSink& sink);
  void Finish(size_t index, SchedulerSink& sink, bool cache_prompt);
  void ReleaseSequence(llama_seq_id seq);
  // Makes room after llama_decode found no free KV cells. Returns false when nothing can move.
  bool MakeRoom(SchedulerSink& sink);
  void ResetMemory();

  SharedModel model_;
  ContextPtr context_;
  SchedulerOptions options_;
  const llama_vocab* vocab_;
  int32_t n_vocab_;
  uint32_t n_ctx_;
  uint32_t n_batch_;
  Batch batch_;
  PrefixCache cache_;
  std::vector<Slot> active_;
  std::deque<Waiting> waiting_;
  std::vector<bool> seq_busy_;
  size_t admit_limit_;  // lowered after the KV cache ran full, reset when a request finishes
  SchedulerStats stats_;
};

}  // namespace xguard
