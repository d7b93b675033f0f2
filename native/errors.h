// JS errors with a `code` property, the one shape every native failure takes.
#pragma once

#include <napi.h>

#include <string>

namespace xguard {

inline Napi::Error MakeError(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

[[noreturn]] inline void ThrowError(Napi::Env env, const std::string& code, const std::string& message) {
  throw MakeError(env, code, message);
}

}  // namespace xguard
