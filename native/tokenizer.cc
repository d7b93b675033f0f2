#include "tokenizer.h"

#include <climits>
#include <stdexcept>

namespace xguard {

std::vector<llama_token> Tokenize(const llama_vocab* vocab, const std::string& text, bool add_special, bool parse_special) {
  if (text.size() > static_cast<size_t>(INT32_MAX)) {
    throw std::runtime_error("text of " + std::to_string(text.size()) + " bytes is too long to tokenize");
  }
  const auto text_len = static_cast<int32_t>(text.size());

  // A token covers at least one byte, plus room for BOS/EOS.
  std::vector<llama_token> tokens(text.size() + 2);
  int32_t n = llama_tokenize(vocab, text.data(), text_len, tokens.data(), static_cast<int32_t>(tokens.size()), add_special, parse_special);
  if (n == INT32_MIN) {
    throw std::runtime_error("tokenization overflowed: the text has too many tokens");
  }
  if (n < 0) {
    tokens.resize(static_cast<size_t>(-n));
    n = llama_tokenize(vocab, text.data(), text_len, tokens.data(), static_cast<int32_t>(tokens.size()), add_special, parse_special);
    if (n < 0) {
      throw std::runtime_error("tokenization failed");
    }
  }
  tokens.resize(static_cast<size_t>(n));
  return tokens;
}

std::string Detokenize(const llama_vocab* vocab, const std::vector<llama_token>& tokens, bool remove_special, bool unparse_special) {
  std::string text(tokens.size() * 8 + 16, '\0');
  const auto n_tokens = static_cast<int32_t>(tokens.size());
  int32_t n = llama_detokenize(vocab, tokens.data(), n_tokens, text.data(), static_cast<int32_t>(text.size()), remove_special, unparse_special);
  if (n < 0) {
    text.resize(static_cast<size_t>(-n));
    n = llama_detokenize(vocab, tokens.data(), n_tokens, text.data(), static_cast<int32_t>(text.size()), remove_special, unparse_special);
    if (n < 0) {
      throw std::runtime_error("detokenization failed");
    }
  }
  text.resize(static_cast<size_t>(n));
  return text;
}

std::string TokenPiece(const llama_vocab* vocab, llama_token token) {
  std::string piece(32, '\0');
  int32_t n = llama_token_to_piece(vocab, token, piece.data(), static_cast<int32_t>(piece.size()), 0, true);
  if (n < 0) {
    piece.resize(static_cast<size_t>(-n));
    n = llama_token_to_piece(vocab, token, piece.data(), static_cast<int32_t>(piece.size()), 0, true);
  }
  piece.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return piece;
}

}  // namespace xguard
