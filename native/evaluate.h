// One evaluation: decode a token sequence in the context's single sequence, reusing the KV
// cells of the longest common prefix with what the sequence already holds, then read the
// distribution at the last position and optionally continue greedily.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "distribution.h"
#include "handles.h"
#include "llama.h"

namespace xguard {

enum class StopReason { None, EndOfGeneration, StopToken, MaxTokens, ContextFull };

const char* StopReasonName(StopReason reason);

// The request as a plain struct: filled and checked on the JS thread, read and written only by
// the context's worker thread while it runs, and turned into JS values after it finishes.
struct EvaluateRequest {
  // Input.
  std::vector<llama_token> tokens;
  int32_t top_k = 10;
  std::vector<llama_token> tracked;      // tokens whose probability is always reported
  int32_t max_new_tokens = 0;            // 0: only the distribution after the last prompt token
  bool all_steps = false;                // a distribution for every generated token, not only the first
  std::vector<llama_token> stop_tokens;  // end generation after one of these (end-of-generation tokens always do)
  bool reference = false;                // decode cold through llama_batch_get_one and return the raw logits

  // Set from the JS thread to stop the request at the next chance.
  std::atomic<bool> abort{false};

  // Output.
  std::vector<Distribution> steps;
  std::vector<llama_token> generated;
  std::vector<float> logits;  // reference mode: the logits after the last prompt token
  int32_t n_reused = 0;       // prompt tokens whose KV cells were reused
  int32_t n_decoded = 0;      // tokens passed through llama_decode
  StopReason stop_reason = StopReason::None;
  double prompt_ms = 0;
  double generate_ms = 0;

  std::string error_code;  // empty on success
  std::string error_message;
};

// Owns a llama_context with one sequence and remembers which tokens that sequence holds.
class Evaluator {
 public:
  Evaluator(SharedModel model, ContextPtr context);

  // Runs one request to completion, recording any failure in `request.error_*`. Never throws.
  void Run(EvaluateRequest& request);

  // Drops the remembered tokens and the KV cells.
  void Reset();

  uint32_t n_ctx() const { return n_ctx_; }
  uint32_t n_batch() const { return n_batch_; }
  size_t cached_tokens() const { return cached_.size(); }
  llama_context* context() const { return context_.get(); }

 private:
  void RunPrompt(EvaluateRequest& request);
  void RunReference(EvaluateRequest& request);
  void Generate(EvaluateRequest& request);
  // Decodes `tokens` at the end of the sequence, asking for logits after the last one only.
  // Returns false (with the error set) on failure, after trimming the sequence to what is known.
  bool DecodeAppend(EvaluateRequest& request, const llama_token* tokens, size_t count);
  void TrimTo(size_t n_tokens);

  static bool AbortCallback(void* data);

  SharedModel model_;
  ContextPtr context_;
  const llama_vocab* vocab_;
  int32_t n_vocab_;
  uint32_t n_ctx_;
  uint32_t n_batch_;
  Batch batch_;
  std::vector<llama_token> cached_;  // tokens whose KV cells sequence 0 holds, in order
  std::atomic<EvaluateRequest*> running_{nullptr};
};

}  // namespace xguard
