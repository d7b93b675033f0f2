#include "evaluate.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace xguard {
namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void Fail(EvaluateRequest& request, const char* code, std::string message) {
  if (request.error_code.empty()) {
    request.error_code = code;
    request.error_message = std::move(message);
  }
}

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

Evaluator::Evaluator(SharedModel model, ContextPtr context)
    : model_(std::move(model)),
      context_(std::move(context)),
      vocab_(llama_model_get_vocab(model_.get())),
      n_vocab_(llama_vocab_n_tokens(vocab_)),
      n_ctx_(llama_n_ctx(context_.get())),
      n_batch_(llama_n_batch(context_.get())),
      batch_(static_cast<int32_t>(llama_n_batch(context_.get())), 1) {
  llama_set_abort_callback(context_.get(), &Evaluator::AbortCallback, this);
}

bool Evaluator::AbortCallback(void* data) {
  auto* self = static_cast<Evaluator*>(data);
  EvaluateRequest* request = self->running_.load();
  return request != nullptr && request->abort.load();
}

void Evaluator::Reset() {
  llama_memory_clear(llama_get_memory(context_.get()), true);
  cached_.clear();
}

void Evaluator::TrimTo(size_t n_tokens) {
  if (n_tokens >= cached_.size()) {
    return;
  }
  // A plain KV cache can always drop a tail. If it refuses, start from an empty sequence.
  if (!llama_memory_seq_rm(llama_get_memory(context_.get()), 0, static_cast<llama_pos>(n_tokens), -1)) {
    Reset();
    return;
  }
  cached_.resize(n_tokens);
}

void Evaluator::Run(EvaluateRequest& request) {
  running_.store(&request);
  try {
    if (request.reference) {
      RunReference(request);
    } else {
      RunPrompt(request);
      if (request.error_code.empty()) {
        Generate(request);
      }
    }
  } catch (const std::exception& error) {
    Reset();
    Fail(request, "ERR_DECODE", std::string("evaluation failed: ") + error.what());
  } catch (...) {
    Reset();
    Fail(request, "ERR_DECODE", "evaluation failed with an unknown native error");
  }
  running_.store(nullptr);
}

bool Evaluator::DecodeAppend(EvaluateRequest& request, const llama_token* tokens, size_t count) {
  size_t done = 0;
  while (done < count) {
    if (request.abort.load()) {
      Fail(request, "ERR_ABORTED", "the request was aborted");
      return false;
    }

    const size_t chunk = std::min(count - done, static_cast<size_t>(n_batch_));
    batch_.Clear();
    for (size_t i = 0; i < chunk; ++i) {
      const bool last = done + i + 1 == count;
      batch_.Add(tokens[done + i], static_cast<llama_pos>(cached_.size() + i), 0, last);
    }

    const int32_t status = llama_decode(context_.get(), batch_.get());
    if (status != 0) {
      // Part of the batch may have reached the KV cache. Keep only what is known to be there.
      llama_memory_t memory = llama_get_memory(context_.get());
      if (!llama_memory_seq_rm(memory, 0, static_cast<llama_pos>(cached_.size()), -1) ||
          llama_memory_seq_pos_max(memory, 0) + 1 != static_cast<llama_pos>(cached_.size())) {
        Reset();
      }
      if (status == 2 || request.abort.load()) {
        Fail(request, "ERR_ABORTED", "the request was aborted");
      } else if (status == 1) {
        Fail(request, "ERR_CONTEXT_OVERFLOW", "llama_decode found no free KV cell for the batch; use a larger context size");
      } else {
        Fail(request, "ERR_DECODE", "llama_decode failed with status " + std::to_string(status));
      }
      return false;
    }

    cached_.insert(cached_.end(), tokens + done, tokens + done + chunk);
    request.n_decoded += static_cast<int32_t>(chunk);
    done += chunk;
  }
  return true;
}

void Evaluator::RunPrompt(EvaluateRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<llama_token>& tokens = request.tokens;

  // Longest common prefix with what the sequence holds. At least the last prompt token is
  // decoded again, because its logits are needed and only the latest batch's are kept.
  size_t common = 0;
  const size_t limit = std::min(cached_.size(), tokens.size());
  while (common < limit && cached_[common] == tokens[common]) {
    ++common;
  }
  const size_t keep = std::min(common, tokens.size() - 1);
  TrimTo(keep);
  request.n_reused = static_cast<int32_t>(cached_.size());

  if (DecodeAppend(request, tokens.data() + cached_.size(), tokens.size() - cached_.size())) {
    const float* logits = llama_get_logits_ith(context_.get(), -1);
    if (logits == nullptr) {
      Fail(request, "ERR_DECODE", "llama.cpp returned no logits for the last prompt token");
    } else {
      request.steps.push_back(ExtractDistribution(logits, n_vocab_, request.top_k, request.tracked));
    }
  }
  request.prompt_ms = MillisecondsSince(start);
}

void Evaluator::Generate(EvaluateRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  llama_token next = request.steps.back().argmax;

  while (request.max_new_tokens > 0) {
    request.generated.push_back(next);

    if (llama_vocab_is_eog(vocab_, next)) {
      request.stop_reason = StopReason::EndOfGeneration;
      break;
    }
    if (std::find(request.stop_tokens.begin(), request.stop_tokens.end(), next) != request.stop_tokens.end()) {
      request.stop_reason = StopReason::StopToken;
      break;
    }
    if (static_cast<int32_t>(request.generated.size()) >= request.max_new_tokens) {
      request.stop_reason = StopReason::MaxTokens;
      break;
    }
    if (cached_.size() >= n_ctx_) {
      request.stop_reason = StopReason::ContextFull;
      break;
    }

    if (!DecodeAppend(request, &next, 1)) {
      break;
    }
    const float* logits = llama_get_logits_ith(context_.get(), -1);
    if (logits == nullptr) {
      Fail(request, "ERR_DECODE", "llama.cpp returned no logits for a generated token");
      break;
    }
    if (request.all_steps) {
      request.steps.push_back(ExtractDistribution(logits, n_vocab_, request.top_k, request.tracked));
      next = request.steps.back().argmax;
    } else {
      next = ArgmaxToken(logits, n_vocab_);
    }
  }
  request.generate_ms = MillisecondsSince(start);
}

void Evaluator::RunReference(EvaluateRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  Reset();

  // The plain path: llama_batch_get_one chunks from position 0, then the raw logits row.
  std::vector<llama_token> tokens = request.tokens;
  size_t done = 0;
  while (done < tokens.size()) {
    const size_t chunk = std::min(tokens.size() - done, static_cast<size_t>(n_batch_));
    const int32_t status = llama_decode(context_.get(), llama_batch_get_one(tokens.data() + done, static_cast<int32_t>(chunk)));
    if (status != 0) {
      Reset();
      Fail(request, status == 2 ? "ERR_ABORTED" : "ERR_DECODE", "llama_decode failed with status " + std::to_string(status));
      return;
    }
    done += chunk;
    request.n_decoded += static_cast<int32_t>(chunk);
  }
  cached_ = tokens;

  // llama_batch_get_one leaves the output flags unset, so only the last token's row is stored.
  const float* logits = llama_get_logits(context_.get());
  if (logits == nullptr) {
    Fail(request, "ERR_DECODE", "llama.cpp returned no logits for the last prompt token");
    return;
  }
  request.logits.assign(logits, logits + n_vocab_);
  request.prompt_ms = MillisecondsSince(start);
}

}  // namespace xguard
