// The JS `Model` class: a loaded GGUF model with its vocabulary and metadata.
#pragma once

#include <napi.h>

#include "handles.h"

namespace xguard {

class Model : public Napi::ObjectWrap<Model> {
 public:
  static Napi::Function Init(Napi::Env env);
  // Wraps a loaded model in a new JS object. Must be called on the JS thread.
  static Napi::Object Wrap(Napi::Env env, SharedModel model);

  explicit Model(const Napi::CallbackInfo& info);
  ~Model() override;

  // Returns the model handle, or throws ERR_CLOSED when dispose() was called.
  const SharedModel& handle(Napi::Env env) const;

 private:
  Napi::Value Metadata(const Napi::CallbackInfo& info);
  Napi::Value AddedTokens(const Napi::CallbackInfo& info);
  Napi::Value Tokenize(const Napi::CallbackInfo& info);
  Napi::Value TokenizeBatch(const Napi::CallbackInfo& info);
  Napi::Value Detokenize(const Napi::CallbackInfo& info);
  Napi::Value TokenPiece(const Napi::CallbackInfo& info);
  Napi::Value IsEog(const Napi::CallbackInfo& info);
  Napi::Value CreateContext(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  void ReleaseModel();

  SharedModel model_;
  int64_t external_bytes_ = 0;
};

// loadModel(path: string, options: { gpuLayers?: number, useMmap?: boolean },
//           onProgress?: (fraction: number) => void): Promise<Model>
Napi::Value LoadModel(const Napi::CallbackInfo& info);

}  // namespace xguard
