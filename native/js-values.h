// Conversions between JS values and the plain C++ values the worker threads use.
#pragma once

#include <napi.h>

#include <vector>

#include "llama.h"

namespace xguard {

// Reads an Int32Array of token ids, each checked to lie in [0, n_vocab). Throws ERR_INVALID_INPUT
// naming `name` and the offending index otherwise.
std::vector<llama_token> ReadTokenArray(Napi::Env env, const Napi::Value& value, int32_t n_vocab, const char* name);

Napi::Int32Array ToInt32Array(Napi::Env env, const std::vector<llama_token>& tokens);

// Reads an optional integer option in [min, max]; throws ERR_INVALID_OPTION naming `key` when the
// value is present but not such an integer.
int32_t ReadIntOption(Napi::Env env, const Napi::Object& options, const char* key, int32_t fallback, int32_t min, int32_t max);

}  // namespace xguard
