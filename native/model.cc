#include "model.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "context.h"
#include "errors.h"
#include "js-values.h"
#include "log.h"
#include "tokenizer.h"

namespace xguard {
namespace {

Napi::FunctionReference* g_model_constructor = nullptr;

struct LoadOptions {
  std::string path;
  int32_t gpu_layers = 0;
  bool use_mmap = true;
};

// Checks the first bytes before llama.cpp opens the file, so the common mistakes get a plain
// message. Returns an empty string when the file looks like GGUF.
std::string CheckGgufFile(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(std::filesystem::u8path(path), error)) {
    return "model path " + path + " is a directory; pass the path of a .gguf file";
  }
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file.is_open()) {
    return "model file " + path + " was not found or cannot be read; check the path and its permissions";
  }
  const std::streamoff size = file.tellg();
  char magic[4] = {0, 0, 0, 0};
  file.seekg(0);
  if (size < 24 || !file.read(magic, 4) || std::memcmp(magic, "GGUF", 4) != 0) {
    return "model file " + path + " is not a GGUF file (it does not start with the GGUF magic bytes); pass a .gguf model";
  }
  return "";
}

class LoadModelWorker : public Napi::AsyncProgressQueueWorker<float> {
 public:
  LoadModelWorker(Napi::Env env, LoadOptions options, Napi::Function on_progress)
      : Napi::AsyncProgressQueueWorker<float>(env, "xguard.loadModel"),
        options_(std::move(options)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (!on_progress.IsEmpty()) {
      on_progress_ = Napi::Persistent(on_progress);
    }
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    error_ = CheckGgufFile(options_.path);
    if (!error_.empty()) {
      return;
    }

    llama_model_params params = llama_model_default_params();
    params.n_gpu_layers = options_.gpu_layers;
    if (!options_.use_mmap) {
      params.load_mode = LLAMA_LOAD_MODE_NONE;
    }
    params.progress_callback = [](float fraction, void* data) -> bool {
      static_cast<const ExecutionProgress*>(data)->Send(&fraction, 1);
      return true;
    };
    params.progress_callback_user_data = const_cast<ExecutionProgress*>(&progress);

    LogCapture capture;
    llama_model* model = nullptr;
    try {
      model = llama_model_load_from_file(options_.path.c_str(), params);
    } catch (const std::exception& error) {
      error_ = std::string("llama.cpp failed to load ") + options_.path + ": " + error.what();
      return;
    }
    if (model == nullptr) {
      std::string reason = capture.text();
      while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) {
        reason.pop_back();
      }
      error_ = "llama.cpp failed to load model file " + options_.path +
               (reason.empty() ? std::string(" (the file may be truncated or of an unsupported architecture)") : ": " + reason);
      return;
    }
    model_ = MakeSharedModel(model);
  }

  void OnProgress(const float* data, size_t count) override {
    if (on_progress_.IsEmpty() || count == 0) {
      return;
    }
    Napi::HandleScope scope(Env());
    on_progress_.Call({Napi::Number::New(Env(), data[count - 1])});
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!error_.empty() || !model_) {
      deferred_.Reject(MakeError(env, "ERR_MODEL_LOAD", error_.empty() ? "model load failed" : error_).Value());
      return;
    }
    deferred_.Resolve(Model::Wrap(env, std::move(model_)));
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  LoadOptions options_;
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference on_progress_;
  SharedModel model_;
  std::string error_;
};

// Tokenizes several texts on a libuv worker thread instead of the JS thread.
class TokenizeWorker : public Napi::AsyncWorker {
 public:
  TokenizeWorker(Napi::Env env, SharedModel model, std::vector<std::string> texts, bool parse_special)
      : Napi::AsyncWorker(env, "xguard.tokenize"),
        model_(std::move(model)),
        texts_(std::move(texts)),
        parse_special_(parse_special),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    const llama_vocab* vocab = llama_model_get_vocab(model_.get());
    try {
      for (const auto& text : texts_) {
        results_.push_back(xguard::Tokenize(vocab, text, false, parse_special_));
      }
    } catch (const std::exception& error) {
      SetError(error.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::Array array = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); ++i) {
      array.Set(static_cast<uint32_t>(i), ToInt32Array(env, results_[i]));
    }
    deferred_.Resolve(array);
  }

  void OnError(const Napi::Error& error) override {
    deferred_.Reject(MakeError(Env(), "ERR_TOKENIZE", error.Message()).Value());
  }

 private:
  SharedModel model_;
  std::vector<std::string> texts_;
  bool parse_special_;
  Napi::Promise::Deferred deferred_;
  std::vector<std::vector<llama_token>> results_;
};

std::string ReadMeta(const llama_model* model, const char* key) {
  std::string value(256, '\0');
  int32_t n = llama_model_meta_val_str(model, key, value.data(), value.size());
  if (n < 0) {
    return "";
  }
  if (static_cast<size_t>(n) >= value.size()) {
    value.resize(static_cast<size_t>(n) + 1);
    n = llama_model_meta_val_str(model, key, value.data(), value.size());
  }
  value.resize(static_cast<size_t>(n));
  return value;
}

Napi::Value TokenOrNull(Napi::Env env, llama_token token) {
  return token < 0 ? env.Null() : Napi::Number::New(env, token);
}

}  // namespace

Napi::Function Model::Init(Napi::Env env) {
  Napi::Function constructor = DefineClass(env, "Model", {
      InstanceMethod<&Model::Metadata>("metadata"),
      InstanceMethod<&Model::AddedTokens>("addedTokens"),
      InstanceMethod<&Model::Tokenize>("tokenize"),
      InstanceMethod<&Model::TokenizeBatch>("tokenizeBatch"),
      InstanceMethod<&Model::Detokenize>("detokenize"),
      InstanceMethod<&Model::TokenPiece>("tokenPiece"),
      InstanceMethod<&Model::IsEog>("isEog"),
      InstanceMethod<&Model::CreateContext>("createContext"),
      InstanceMethod<&Model::Dispose>("dispose"),
  });
  g_model_constructor = new Napi::FunctionReference(Napi::Persistent(constructor));
  env.AddCleanupHook([] {
    delete g_model_constructor;
    g_model_constructor = nullptr;
  });
  return constructor;
}

Napi::Object Model::Wrap(Napi::Env env, SharedModel model) {
  // The handle travels through an External, because a constructor only takes JS values.
  auto* holder = new SharedModel(std::move(model));
  Napi::Object object = g_model_constructor->New({Napi::External<SharedModel>::New(env, holder)});
  delete holder;
  return object;
}

Model::Model(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Model>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(env, "Model cannot be constructed directly; use loadModel()");
  }
  model_ = *info[0].As<Napi::External<SharedModel>>().Data();
  // Tell V8 what the weights cost, so the garbage collector weighs an unreferenced model right.
  external_bytes_ = static_cast<int64_t>(llama_model_size(model_.get()));
  Napi::MemoryManagement::AdjustExternalMemory(env, external_bytes_);
}

Model::~Model() {
  ReleaseModel();
}

void Model::ReleaseModel() {
  if (model_ && external_bytes_ != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -external_bytes_);
    external_bytes_ = 0;
  }
  model_.reset();
}

const SharedModel& Model::handle(Napi::Env env) const {
  if (!model_) {
    ThrowError(env, "ERR_CLOSED", "the model was disposed; load it again to use it");
  }
  return model_;
}

Napi::Value Model::Metadata(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llama_model* model = handle(env).get();
  const llama_vocab* vocab = llama_model_get_vocab(model);

  Napi::Object meta = Napi::Object::New(env);
  meta.Set("architecture", ReadMeta(model, "general.architecture"));
  meta.Set("name", ReadMeta(model, "general.name"));
  char description[256] = {0};
  llama_model_desc(model, description, sizeof(description));
  meta.Set("description", description);
  meta.Set("parameterCount", Napi::Number::New(env, static_cast<double>(llama_model_n_params(model))));
  meta.Set("sizeBytes", Napi::Number::New(env, static_cast<double>(llama_model_size(model))));
  meta.Set("trainContextLength", llama_model_n_ctx_train(model));
  meta.Set("embeddingLength", llama_model_n_embd(model));
  meta.Set("layerCount", llama_model_n_layer(model));
  meta.Set("headCount", llama_model_n_head(model));
  meta.Set("vocabularySize", llama_vocab_n_tokens(vocab));
  const char* chat_template = llama_model_chat_template(model, nullptr);
  meta.Set("chatTemplate", chat_template == nullptr ? env.Null() : Napi::String::New(env, chat_template));

  Napi::Object special = Napi::Object::New(env);
  special.Set("bos", TokenOrNull(env, llama_vocab_bos(vocab)));
  special.Set("eos", TokenOrNull(env, llama_vocab_eos(vocab)));
  special.Set("eot", TokenOrNull(env, llama_vocab_eot(vocab)));
  special.Set("pad", TokenOrNull(env, llama_vocab_pad(vocab)));
  special.Set("addBos", llama_vocab_get_add_bos(vocab));
  special.Set("addEos", llama_vocab_get_add_eos(vocab));
  meta.Set("specialTokens", special);
  return meta;
}

// addedTokens(): Array<{ id: number, text: string, control: boolean }>
// Every control or user-defined token: the tokens whose text a tokenizer may match as one unit.
Napi::Value Model::AddedTokens(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llama_vocab* vocab = llama_model_get_vocab(handle(env).get());
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);

  Napi::Array result = Napi::Array::New(env);
  uint32_t count = 0;
  for (llama_token token = 0; token < n_vocab; ++token) {
    const llama_token_attr attr = llama_vocab_get_attr(vocab, token);
    if ((attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED)) == 0) {
      continue;
    }
    const char* text = llama_vocab_get_text(vocab, token);
    if (text == nullptr || text[0] == '\0') {
      continue;
    }
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("id", token);
    entry.Set("text", text);
    entry.Set("control", (attr & LLAMA_TOKEN_ATTR_CONTROL) != 0);
    result.Set(count++, entry);
  }
  return result;
}

// tokenize(text: string, addSpecial: boolean, parseSpecial: boolean): Int32Array
Napi::Value Model::Tokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llama_model* model = handle(env).get();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowError(env, "ERR_INVALID_INPUT", "tokenize: text must be a string");
  }
  const bool add_special = info.Length() > 1 && info[1].ToBoolean().Value();
  const bool parse_special = info.Length() > 2 && info[2].ToBoolean().Value();

  std::vector<llama_token> tokens;
  try {
    tokens = xguard::Tokenize(llama_model_get_vocab(model), info[0].As<Napi::String>().Utf8Value(), add_special, parse_special);
  } catch (const std::exception& error) {
    ThrowError(env, "ERR_TOKENIZE", error.what());
  }
  return ToInt32Array(env, tokens);
}

// tokenizeBatch(texts: string[], parseSpecial: boolean): Promise<Int32Array[]>
Napi::Value Model::TokenizeBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const SharedModel& model = handle(env);
  if (info.Length() < 1 || !info[0].IsArray()) {
    ThrowError(env, "ERR_INVALID_INPUT", "tokenizeBatch: texts must be an array of strings");
  }
  Napi::Array array = info[0].As<Napi::Array>();
  std::vector<std::string> texts;
  texts.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) {
      ThrowError(env, "ERR_INVALID_INPUT", "tokenizeBatch: texts[" + std::to_string(i) + "] must be a string");
    }
    texts.push_back(item.As<Napi::String>().Utf8Value());
  }
  const bool parse_special = info.Length() > 1 && info[1].ToBoolean().Value();

  auto* worker = new TokenizeWorker(env, model, std::move(texts), parse_special);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// detokenize(tokens: Int32Array, removeSpecial: boolean, unparseSpecial: boolean): string
Napi::Value Model::Detokenize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llama_vocab* vocab = llama_model_get_vocab(handle(env).get());
  if (info.Length() < 1) {
    ThrowError(env, "ERR_INVALID_INPUT", "detokenize: tokens must be an Int32Array of token ids");
  }
  std::vector<llama_token> tokens = ReadTokenArray(env, info[0], llama_vocab_n_tokens(vocab), "tokens");
  const bool remove_special = info.Length() > 1 && info[1].ToBoolean().Value();
  const bool unparse_special = info.Length() > 2 && info[2].ToBoolean().Value();
  try {
    return Napi::String::New(env, xguard::Detokenize(vocab, tokens, remove_special, unparse_special));
  } catch (const std::exception& error) {
    ThrowError(env, "ERR_TOKENIZE", error.what());
  }
}

// tokenPiece(token: number): string
Napi::Value Model::TokenPiece(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llama_vocab* vocab = llama_model_get_vocab(handle(env).get());
  const int32_t n_vocab = llama_vocab_n_tokens(vocab);
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowError(env, "ERR_INVALID_INPUT", "tokenPiece: token must be a number");
  }
  const int32_t token = info[0].As<Napi::Number>().Int32Value();
  if (token < 0 || token >= n_vocab) {
    ThrowError(env, "ERR_INVALID_INPUT", "tokenPiece: token " + std::to_string(token) + " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
  }
  return Napi::String::New(env, xguard::TokenPiece(vocab, token));
}

// isEog(token: number): boolean
Napi::Value Model::IsEog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const llama_vocab* vocab = llama_model_get_vocab(handle(env).get());
  if (info.Length() < 1 || !info[0].IsNumber()) {
    ThrowError(env, "ERR_INVALID_INPUT", "isEog: token must be a number");
  }
  const int32_t token = info[0].As<Napi::Number>().Int32Value();
  return Napi::Boolean::New(env, token >= 0 && token < llama_vocab_n_tokens(vocab) && llama_vocab_is_eog(vocab, token));
}

// createContext(options): Promise<Context>
Napi::Value Model::CreateContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const SharedModel& model = handle(env);
    Napi::Object options = info.Length() > 0 && info[0].IsObject() ? info[0].As<Napi::Object>() : Napi::Object::New(env);
    return Context::CreateAsync(env, model, Value(), options);
  } catch (const Napi::Error& error) {
    // Option errors reach the caller as a rejection, like every other failure of an async call.
    Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(error.Value());
    return deferred.Promise();
  }
}

// dispose(): void. Contexts created from this model keep the weights until they are disposed.
Napi::Value Model::Dispose(const Napi::CallbackInfo& info) {
  ReleaseModel();
  return info.Env().Undefined();
}

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    ThrowError(env, "ERR_INVALID_INPUT", "loadModel: path must be a string");
  }

  LoadOptions options;
  options.path = info[0].As<Napi::String>().Utf8Value();
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object object = info[1].As<Napi::Object>();
    if (object.Has("gpuLayers") && object.Get("gpuLayers").IsNumber()) {
      options.gpu_layers = object.Get("gpuLayers").As<Napi::Number>().Int32Value();
    }
    if (object.Has("useMmap") && object.Get("useMmap").IsBoolean()) {
      options.use_mmap = object.Get("useMmap").As<Napi::Boolean>().Value();
    }
  }
  Napi::Function on_progress;
  if (info.Length() > 2 && info[2].IsFunction()) {
    on_progress = info[2].As<Napi::Function>();
  }

  auto* worker = new LoadModelWorker(env, std::move(options), on_progress);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace xguard
