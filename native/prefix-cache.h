// Token prefixes kept in the KV cache after their requests finish, so later requests that
// start the same way copy those cells (llama_memory_seq_cp) instead of decoding them again.
//
// Each entry owns one sequence id of the unified KV cache. Entries share cells wherever one
// was copied from another, so an entry costs only the cells past its longest common prefix
// with the other entries. The budget counts cells that way and evicts the least recently used
// entries first.
#pragma once

#include <cstdint>
#include <vector>

#include "llama.h"

namespace xguard {

// Number of leading tokens two sequences have in common.
size_t CommonPrefixLength(const std::vector<llama_token>& a, const std::vector<llama_token>& b);

struct PrefixCacheStats {
  uint64_t hits = 0;        // requests that reused at least one cached or running token
  uint64_t misses = 0;      // requests that reused nothing
  uint64_t evictions = 0;
  uint64_t reused_tokens = 0;
  uint32_t entries = 0;
  uint32_t cells = 0;       // estimated KV cells held by the entries alone
};

class PrefixCache {
 public:
  struct Match {
    int32_t entry = -1;  // index into entries, or -1
    size_t length = 0;   // common prefix length with the request
  };

  // Entries use sequence ids [first_seq, first_seq + max_entries).
  PrefixCache(llama_seq_id first_seq, uint32_t max_entries, uint32_t cell_budget);

  // Returns the entry with the longest common prefix with `tokens`.
  Match FindLongest(const std::vector<llama_token>& tokens) const;

  // Marks an entry as just used.
  void Touch(int32_t entry);

  llama_seq_id SequenceOf(int32_t entry) const { return entries_[static_cast<size_t>(entry)].seq; }

  // Stores the first `length` cells of sequence `source` as a new entry, after evicting as
  // needed. Does nothing when an entry already contains exactly those tokens.
  void Insert(llama_memory_t memory, llama_seq_id source, const std::vector<llama_token>& tokens, size_t length);

  // Removes the least recently used entry. Returns false when the cache is empty.
  bool EvictOne(llama_memory_t memory);

  void Clear(llama_memory_t memory);

  PrefixCacheStats& stats() { return stats_; }
  const PrefixCacheStats& stats() const { return stats_; }

 private:
  struct Entry {
    llama_seq_id seq;
    std::vector<llama_token> tokens;
    uint64_t last_used;
  };

  // Cells held by all entries together: the size of the trie their token lists form.
  uint32_t CountCells() const;
  void Refresh();

  llama_seq_id first_seq_;
  uint32_t max_entries_;
  uint32_t cell_budget_;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  PrefixCacheStats stats_;
};

}  // namespace xguard
