// The first-token distribution extractor: turns one position's logits into the numbers a guard
// needs, without handing the whole vocabulary to JavaScript.
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"

namespace xguard {

struct TokenProbability {
  llama_token token;
  double logprob;  // natural log of the softmax probability over the full vocabulary
};

struct Distribution {
  llama_token argmax = -1;
  std::vector<TokenProbability> top;      // the top_k entries, highest first
  std::vector<TokenProbability> tracked;  // the requested tokens, in request order
};

// Softmax over all `n_vocab` logits, reduced to the top `top_k` tokens and the `tracked` ones.
// Token ids in `tracked` must already be checked to lie in [0, n_vocab).
Distribution ExtractDistribution(const float* logits, int32_t n_vocab, int32_t top_k, const std::vector<llama_token>& tracked);

// Index of the largest logit. A greedy step without a requested distribution needs only this.
llama_token ArgmaxToken(const float* logits, int32_t n_vocab);

}  // namespace xguard
