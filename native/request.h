// One evaluation request as a plain struct: filled and checked on the JS thread, then read
// and written only by the context's worker thread until its result goes back to JS.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "distribution.h"
#include "llama.h"

namespace xguard {

enum class StopReason { None, EndOfGeneration, StopToken, MaxTokens, ContextFull };

const char* StopReasonName(StopReason reason);

struct EvaluateRequest {
  // Input.
  std::vector<llama_token> tokens;
  int32_t top_k = 10;
  std::vector<llama_token> tracked;      // tokens whose probability is always reported
  int32_t max_new_tokens = 0;            // 0: only the distribution after the last prompt token
  bool all_steps = false;                // a distribution for every generated token, not only the first
  std::vector<llama_token> stop_tokens;  // end generation after one of these (end-of-generation tokens always do)
  bool reference = false;                // decode alone and cold through llama_batch_get_one; return the raw logits
  bool stream = false;                   // report the first distribution and each generated token as they come

  // Set from the JS thread to stop the request at the next decode step.
  std::atomic<bool> abort{false};

  // Output.
  std::vector<Distribution> steps;
  std::vector<llama_token> generated;
  std::vector<float> logits;  // reference mode: the logits after the last prompt token
  int32_t n_reused = 0;       // prompt tokens whose KV cells came from the prefix cache or a running request
  int32_t n_decoded = 0;      // tokens of this request passed through llama_decode
  StopReason stop_reason = StopReason::None;
  double queue_ms = 0;        // from submission to the first decode step
  double prompt_ms = 0;       // from the first decode step to the first distribution
  double generate_ms = 0;
  int32_t batch_peak = 1;     // maximum number of requests that shared one llama_decode call with this one

  std::string error_code;  // empty on success
  std::string error_message;

  void Fail(const char* code, std::string message) {
    if (error_code.empty()) {
      error_code = code;
      error_message = std::move(message);
    }
  }
};

}  // namespace xguard
