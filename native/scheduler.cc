#include "scheduler.h"

#include <algorithm>

namespace xguard {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsBetween(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double, std::milli>(end - start).count();
}

// A newcomer waits for a running request to decode a shared prefix only when at least this
// many tokens would otherwise be decoded twice.
constexpr size_t kMinSharedWait = 16;

}  // namespace

const char* StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::EndOfGeneration: return "eog";
    case StopReason::StopToken: return "stop_token";
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::ContextFull: return "context_full";
    default: return "none";
  }
}

Scheduler::Scheduler(SharedModel model, ContextPtr context, SchedulerOptions options)
    : model_(std::move(model)),
      context_(std::move(context)),
      options_(options),
      vocab_(llama_model_get_vocab(model_.get())),
      n_vocab_(llama_vocab_n_tokens(vocab_)),
      n_ctx_(llama_n_ctx(context_.get())),
      n_batch_(llama_n_batch(context_.get())),
      batch_(static_cast<int32_t>(llama_n_batch(context_.get())), 1),
      cache_(static_cast<llama_seq_id>(options.n_slots), options.cache_entries, options.cache_cells),
      seq_busy_(options.n_slots, false),
      admit_limit_(options.n_slots) {}

void Scheduler::Submit(std::shared_ptr<void> owner, EvaluateRequest* request) {
  waiting_.push_back({std::move(owner), request, Clock::now()});
}

SchedulerStats Scheduler::stats() const {
  SchedulerStats stats = stats_;
  stats.cache = cache_.stats();
  stats.active = static_cast<uint32_t>(active_.size());
  stats.waiting = static_cast<uint32_t>(waiting_.size());
  return stats;
}

void Scheduler::ReleaseSequence(llama_seq_id seq) {
  llama_memory_seq_rm(llama_get_memory(context_.get()), seq, -1, -1);
  seq_busy_[static_cast<size_t>(seq)] = false;
}

void Scheduler::ResetMemory() {
  llama_memory_t memory = llama_get_memory(context_.get());
  cache_.Clear(memory);
  llama_memory_clear(memory, true);
  std::fill(seq_busy_.begin(), seq_busy_.end(), false);
}

bool Scheduler::Start(Waiting& waiting) {
  EvaluateRequest& request = *waiting.request;
  const std::vector<llama_token>& tokens = request.tokens;

  PrefixCache::Match cached = cache_.FindLongest(tokens);
  size_t best = cached.length;
  llama_seq_id source = cached.entry >= 0 ? cache_.SequenceOf(cached.entry) : -1;

  // A running request that starts the same way shares its cells too, once they are decoded.
  for (const Slot& slot : active_) {
    const size_t shared = CommonPrefixLength(slot.request->tokens, tokens);
    const size_t ready = std::min(shared, slot.n_past);
    if (slot.phase == Phase::Prefill && shared > std::max(best, ready) + kMinSharedWait) {
      return false;
    }
    if (ready > best) {
      best = ready;
      source = slot.seq;
      cached.entry = -1;
    }
  }

  auto free_seq = std::find(seq_busy_.begin(), seq_busy_.end(), false);
  const auto seq = static_cast<llama_seq_id>(free_seq - seq_busy_.begin());
  *free_seq = true;

  // The last prompt token is always decoded, because its logits are the point of the request.
  const size_t keep = std::min(best, tokens.size() - 1);
  llama_memory_t memory = llama_get_memory(context_.get());
  llama_memory_seq_rm(memory, seq, -1, -1);
  if (keep > 0) {
    llama_memory_seq_cp(memory, source, seq, 0, static_cast<llama_pos>(keep));
  }
  if (cached.entry >= 0) {
    cache_.Touch(cached.entry);
  }

  PrefixCacheStats& cache_stats = cache_.stats();
  if (keep > 0) {
    cache_stats.hits++;
    cache_stats.reused_tokens += keep;
  } else {
    cache_stats.misses++;
  }

  Slot slot;
  slot.owner = std::move(waiting.owner);
  slot.request = waiting.request;
  slot.seq = seq;
  slot.n_past = keep;
  slot.started = Clock::now();
  request.n_reused = static_cast<int32_t>(keep);
  request.queue_ms = MillisecondsBetween(waiting.submitted, slot.started);
  active_.push_back(std::move(slot));
  return true;
}

void Scheduler::Admit() {
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (active_.size() >= std::min<size_t>(options_.n_slots, admit_limit_)) {
      return;
    }
    if (it->request->reference) {
      return;  // a reference request runs alone, once the running ones are done
    }
    if (Start(*it)) {
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
}

void Scheduler::RunReference(Waiting waiting, SchedulerSink& sink) {
  EvaluateRequest& request = *waiting.request;
  const auto started = Clock::now();
  request.queue_ms = MillisecondsBetween(waiting.submitted, started);

  // The plain path: sequence 0 from position 0, llama_batch_get_one chunks, the raw logits row.
  llama_memory_t memory = llama_get_memory(context_.get());
  llama_memory_seq_rm(memory, 0, -1, -1);
  std::vector<llama_token> tokens = request.tokens;
  size_t done = 0;
  while (done < tokens.size() && request.error_code.empty()) {
    const size_t chunk = std::min(tokens.size() - done, static_cast<size_t>(n_batch_));
    const int32_t status = llama_decode(context_.get(), llama_batch_get_one(tokens.data() + done, static_cast<int32_t>(chunk)));
    if (status != 0) {
      request.Fail(status == 1 ? "ERR_CONTEXT_OVERFLOW" : "ERR_DECODE", "llama_decode failed with status " + std::to_string(status));
      break;
    }
    done += chunk;
    request.n_decoded += static_cast<int32_t>(chunk);
  }
  if (request.error_code.empty()) {
    // llama_batch_get_one leaves the output flags unset, so only the last token's row is stored.
    const float* logits = llama_get_logits(context_.get());
    if (logits == nullptr) {
      request.Fail("ERR_DECODE", "llama.cpp returned no logits for the last prompt token");
    } else {
      request.logits.assign(logits, logits + n_vocab_);
    }
  }
  llama_memory_seq_rm(memory, 0, -1, -1);
  request.prompt_ms = MillisecondsBetween(started, Clock::now());
  stats_.completed++;
  sink.OnFinished(std::move(waiting.owner), waiting.request);
}

bool Scheduler::Advance(Slot& slot, SchedulerSink& sink) {
  EvaluateRequest& request = *slot.request;
  const float* logits = llama_get_logits_ith(context_.get(), slot.output);
  if (logits == nullptr) {
    request.Fail("ERR_DECODE", "llama.cpp returned no logits for a request's last token");
    return true;
  }

  llama_token next;
  if (slot.phase == Phase::Prefill) {
    request.steps.push_back(ExtractDistribution(logits, n_vocab_, request.top_k, request.tracked));
    slot.prompt_done = Clock::now();
    request.prompt_ms = MillisecondsBetween(slot.started, slot.prompt_done);
    slot.phase = Phase::Generating;
    if (request.stream) {
      sink.OnFirstDistribution(slot.owner, slot.request);
    }
    next = request.steps.back().argmax;
  } else if (request.all_steps) {
    request.steps.push_back(ExtractDistribution(logits, n_vocab_, request.top_k, request.tracked));
    next = request.steps.back().argmax;
  } else {
    next = ArgmaxToken(logits, n_vocab_);
  }

  if (request.max_new_tokens == 0) {
    return true;
  }
  request.generated.push_back(next);
  if (request.stream) {
    sink.OnToken(slot.owner, slot.request);
  }

  if (llama_vocab_is_eog(vocab_, next)) {
    request.stop_reason = StopReason::EndOfGeneration;
  } else if (std::find(request.stop_tokens.begin(), request.stop_tokens.end(), next) != request.stop_tokens.end()) {
    request.stop_reason = StopReason::StopToken;
  } else if (static_cast<int32_t>(request.generated.size()) >= request.max_new_tokens) {
    request.stop_reason = StopReason::MaxTokens;
  } else if (slot.n_past >= n_ctx_) {
    request.stop_reason = StopReason::ContextFull;
  } else {
    slot.pending = next;
    return false;
  }
  return true;
}

void Scheduler::Finish(size_t index, SchedulerSink& sink, bool cache_prompt) {
  Slot slot = std::move(active_[index]);
  active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(index));
  EvaluateRequest& request = *slot.request;

  if (slot.phase == Phase::Generating) {
    request.generate_ms = MillisecondsBetween(slot.prompt_done, Clock::now());
  }
  // The whole prompt is in this sequence: keep it, so a later request that extends it (a
  // response checked after its request) or shares the template reuses those cells.
  if (cache_prompt && request.error_code.empty() && slot.n_past >= request.tokens.size()) {
    cache_.Insert(llama_get_memory(context_.get()), slot.seq, request.tokens, request.tokens.size());
  }
  ReleaseSequence(slot.seq);
  admit_limit_ = options_.n_slots;
  stats_.completed++;
  sink.OnFinished(std::move(slot.owner), slot.request);
}

bool Scheduler::MakeRoom(SchedulerSink& sink) {
  llama_memory_t memory = llama_get_memory(context_.get());
  if (cache_.EvictOne(memory)) {
    return true;
  }

  // Put the newest request that is still reading its prompt back in line: it has reported
  // nothing yet, so it can start over later without a visible difference.
  if (active_.size() > 1) {
    for (size_t i = active_.size(); i-- > 0;) {
      if (active_[i].phase != Phase::Prefill) {
        continue;
      }
      Slot slot = std::move(active_[i]);
      active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
      ReleaseSequence(slot.seq);
      slot.request->n_reused = 0;
      waiting_.push_front({std::move(slot.owner), slot.request, Clock::now()});
      admit_limit_ = static_cast<uint32_t>(std::max<size_t>(1, active_.size()));
      return true;
    }
  }

  // The newest request cannot fit beside the others, or alone.
  if (!active_.empty()) {
    const size_t index = active_.size() - 1;
    active_[index].request->Fail(
        "ERR_CONTEXT_OVERFLOW",
        "the KV cache has no free cell for this request (context size " + std::to_string(n_ctx_) +
            "); use a larger contextSize or shorter inputs");
    Finish(index, sink, false);
    return true;
  }
  return false;
}

void Scheduler::FailAll(SchedulerSink& sink, const char* code, const std::string& message) {
  while (!waiting_.empty()) {
    Waiting waiting = std::move(waiting_.front());
    waiting_.pop_front();
    waiting.request->Fail(code, message);
    sink.OnFinished(std::move(waiting.owner), waiting.request);
  }
  while (!active_.empty()) {
    active_.back().request->Fail(code, message);
    Finish(active_.size() - 1, sink, false);
  }
}

void Scheduler::Step(SchedulerSink& sink) {
  // Aborted requests leave first, waiting or running.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->request->abort.load()) {
      it->request->Fail("ERR_ABORTED", "the request was aborted");
      Waiting waiting = std::move(*it);
      it = waiting_.erase(it);
      sink.OnFinished(std::move(waiting.owner), waiting.request);
    } else {
      ++it;
    }
  }
  for (size_t i = active_.size(); i-- > 0;) {
    if (active_[i].request->abort.load()) {
      active_[i].request->Fail("ERR_ABORTED", "the request was aborted");
      Finish(i, sink, false);
    }
  }

  if (active_.empty() && !waiting_.empty() && waiting_.front().request->reference) {
    Waiting waiting = std::move(waiting_.front());
    waiting_.pop_front();
    RunReference(std::move(waiting), sink);
    return;
  }

  Admit();
  if (active_.empty()) {
    return;
  }

  // Generating requests first, one token each, so explanations keep flowing while prompts
  // of new requests fill the rest of the batch.
  batch_.Clear();
  std::vector<size_t> chunk(active_.size(), 0);
  for (size_t i = 0; i < active_.size(); ++i) {
    Slot& slot = active_[i];
    slot.output = -1;
    if (slot.phase == Phase::Generating && static_cast<uint32_t>(batch_.size()) < n_batch_) {
      slot.output = batch_.size();
      batch_.Add(slot.pending, static_cast<llama_pos>(slot.n_past), slot.seq, true);
      chunk[i] = 1;
    }
  }
  for (size_t i = 0; i < active_.size(); ++i) {
    Slot& slot = active_[i];
    if (slot.phase != Phase::Prefill) {
      continue;
    }
    const size_t room = n_batch_ - static_cast<size_t>(batch_.size());
    if (room == 0) {
      break;
    }
    const std::vector<llama_token>& tokens = slot.request->tokens;
    const size_t take = std::min(room, tokens.size() - slot.n_past);
    for (size_t k = 0; k < take; ++k) {
      const size_t position = slot.n_past + k;
      const bool last = position + 1 == tokens.size();
      if (last) {
        slot.output = batch_.size();
      }
      batch_.Add(tokens[position], static_cast<llama_pos>(position), slot.seq, last);
    }
    chunk[i] = take;
  }

  int32_t sharing = 0;
  for (size_t taken : chunk) {
    sharing += taken > 0 ? 1 : 0;
  }

  const int32_t status = llama_decode(context_.get(), batch_.get());
  if (status == 1) {
    // No free KV cells for this batch; llama.cpp left the cache as it was.
    if (!MakeRoom(sink)) {
      FailAll(sink, "ERR_CONTEXT_OVERFLOW", "the KV cache is full; use a larger contextSize");
    }
    return;
  }
  if (status != 0) {
    // An abort or a fatal error may leave part of the batch in the cache: start clean.
    const bool aborted = status == 2;
    FailAll(sink, aborted ? "ERR_ABORTED" : "ERR_DECODE",
            aborted ? "the request was aborted" : "llama_decode failed with status " + std::to_string(status));
    ResetMemory();
    return;
  }

  stats_.steps++;
  stats_.decoded_tokens += static_cast<uint64_t>(batch_.size());

  std::vector<size_t> finished;
  for (size_t i = 0; i < active_.size(); ++i) {
    Slot& slot = active_[i];
    if (chunk[i] == 0) {
      continue;
    }
    slot.n_past += chunk[i];
    slot.request->n_decoded += static_cast<int32_t>(chunk[i]);
    slot.request->batch_peak = std::max(slot.request->batch_peak, sharing);
    if (slot.output >= 0 && Advance(slot, sink)) {
      finished.push_back(i);
    }
  }
  for (size_t k = finished.size(); k-- > 0;) {
    Finish(finished[k], sink, true);
  }
}

}  // namespace xguard
