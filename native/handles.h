// RAII owners for llama.cpp handles, so no error path can leak a model, context or batch.
#pragma once

#include <memory>

#include "llama.h"

namespace xguard {

struct ModelDeleter {
  void operator()(llama_model* model) const { llama_model_free(model); }
};

struct ContextDeleter {
  void operator()(llama_context* context) const { llama_free(context); }
};

using ModelPtr = std::unique_ptr<llama_model, ModelDeleter>;
using ContextPtr = std::unique_ptr<llama_context, ContextDeleter>;

// A llama_batch allocated with llama_batch_init and freed with llama_batch_free.
class Batch {
 public:
  Batch(int32_t capacity, int32_t seq_max) : batch_(llama_batch_init(capacity, 0, seq_max)) {}
  ~Batch() { llama_batch_free(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void Clear() { batch_.n_tokens = 0; }

  // Appends one token of sequence `seq` at position `pos`. `output` requests its logits.
  void Add(llama_token token, llama_pos pos, llama_seq_id seq, bool output) {
    const int32_t i = batch_.n_tokens;
    batch_.token[i] = token;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = seq;
    batch_.logits[i] = output ? 1 : 0;
    batch_.n_tokens++;
  }

  int32_t size() const { return batch_.n_tokens; }
  llama_batch& get() { return batch_; }

 private:
  llama_batch batch_;
};

// The model handle is shared: contexts keep it alive after the JS model object is disposed.
using SharedModel = std::shared_ptr<llama_model>;

inline SharedModel MakeSharedModel(llama_model* model) {
  return SharedModel(model, ModelDeleter());
}

}  // namespace xguard
