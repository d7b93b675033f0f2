// Text <-> token conversion over a llama_vocab. Pure C++: safe to call on any thread.
#pragma once

#include <string>
#include <vector>

#include "llama.h"

namespace xguard {

// Tokenizes UTF-8 text. `add_special` adds BOS/EOS where the model's metadata requests them;
// `parse_special` turns control-token text such as "<|im_end|>" into those tokens.
// Throws std::runtime_error when llama.cpp reports a failure.
std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text, bool add_special, bool parse_special);

// Joins the pieces of `tokens` into text. `unparse_special` renders control tokens as text.
std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool remove_special, bool unparse_special);

// Returns the text of one token, with special tokens rendered.
std::string TokenPiece(const llama_vocab* vocab, llama_token token);

}  // namespace xguard
