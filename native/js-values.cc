#include "js-values.h"

#include <cmath>
#include <cstring>
#include <string>

#include "errors.h"

namespace xguard {

std::vector<llama_token> ReadTokenArray(Napi::Env env, const Napi::Value& value, int32_t n_vocab, const char* name) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    ThrowError(env, "ERR_INVALID_INPUT", std::string(name) + " must be an Int32Array of token ids");
  }
  Napi::Int32Array array = value.As<Napi::Int32Array>();
  std::vector<llama_token> tokens(array.Data(), array.Data() + array.ElementLength());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= n_vocab) {
      ThrowError(env, "ERR_INVALID_INPUT",
                 std::string(name) + "[" + std::to_string(i) + "] is " + std::to_string(tokens[i]) +
                     ", outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
    }
  }
  return tokens;
}

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<llama_token>& tokens) {
  Napi::Int32Array array = Napi::Int32Array::New(env, tokens.size());
  if (!tokens.empty()) {
    std::memcpy(array.Data(), tokens.data(), tokens.size() * sizeof(llama_token));
  }
  return array;
}

int32_t ReadIntOption(Napi::Env env, const Napi::Object& options, const char* key, int32_t fallback, int32_t min, int32_t max) {
  Napi::Value value = options.Get(key);
  if (value.IsUndefined() || value.IsNull()) {
    return fallback;
  }
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : NAN;
  if (!std::isfinite(number) || std::floor(number) != number || number < min || number > max) {
    ThrowError(env, "ERR_INVALID_OPTION",
               std::string(key) + " must be an integer from " + std::to_string(min) + " to " + std::to_string(max) +
                   ", got " + value.ToString().Utf8Value());
  }
  return static_cast<int32_t>(number);
}

}  // namespace xguard
