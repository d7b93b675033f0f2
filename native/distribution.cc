#include "distribution.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace xguard {

llama_token ArgmaxToken(const float* logits, int32_t n_vocab) {
  return static_cast<llama_token>(std::max_element(logits, logits + n_vocab) - logits);
}

Distribution ExtractDistribution(const float* logits, int32_t n_vocab, int32_t top_k, const std::vector<llama_token>& tracked) {
  Distribution result;
  result.argmax = ArgmaxToken(logits, n_vocab);

  // log-sum-exp in double: over 151k entries a float sum loses the small probabilities.
  const double max_logit = logits[result.argmax];
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab; ++i) {
    sum += std::exp(static_cast<double>(logits[i]) - max_logit);
  }
  const double log_normalizer = max_logit + std::log(sum);

  const int32_t k = std::min(std::max(top_k, 0), n_vocab);
  if (k > 0) {
    std::vector<llama_token> order(static_cast<size_t>(n_vocab));
    std::iota(order.begin(), order.end(), 0);
    // Ties keep the lower token id first, so the order is deterministic.
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [logits](llama_token a, llama_token b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    result.top.reserve(static_cast<size_t>(k));
    for (int32_t i = 0; i < k; ++i) {
      const llama_token token = order[static_cast<size_t>(i)];
      result.top.push_back({token, static_cast<double>(logits[token]) - log_normalizer});
    }
  }

  result.tracked.reserve(tracked.size());
  for (llama_token token : tracked) {
    result.tracked.push_back({token, static_cast<double>(logits[token]) - log_normalizer});
  }
  return result;
}

}  // namespace xguard
