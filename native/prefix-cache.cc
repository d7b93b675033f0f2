#include "prefix-cache.h"

#include <algorithm>

namespace xguard {

size_t CommonPrefixLength(const std::vector<llama_token>& a, const std::vector<llama_token>& b) {
  const size_t limit = std::min(a.size(), b.size());
  size_t n = 0;
  while (n < limit && a[n] == b[n]) {
    ++n;
  }
  return n;
}

PrefixCache::PrefixCache(llama_seq_id first_seq, uint32_t max_entries, uint32_t cell_budget)
    : first_seq_(first_seq), max_entries_(max_entries), cell_budget_(cell_budget) {}

PrefixCache::Match PrefixCache::FindLongest(const std::vector<llama_token>& tokens) const {
  Match best;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const size_t length = CommonPrefixLength(entries_[i].tokens, tokens);
    if (length > best.length) {
      best.entry = static_cast<int32_t>(i);
      best.length = length;
    }
  }
  return best;
}

void PrefixCache::Touch(int32_t entry) {
  entries_[static_cast<size_t>(entry)].last_used = ++clock_;
}

uint32_t PrefixCache::CountCells() const {
  std::vector<const std::vector<llama_token>*> sorted;
  sorted.reserve(entries_.size());
  for (const auto& entry : entries_) {
    sorted.push_back(&entry.tokens);
  }
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return *a < *b; });

  // In lexicographic order, each list adds the nodes past its common prefix with the one before.
  size_t cells = 0;
  for (size_t i = 0; i < sorted.size(); ++i) {
    const size_t shared = i == 0 ? 0 : CommonPrefixLength(*sorted[i - 1], *sorted[i]);
    cells += sorted[i]->size() - shared;
  }
  return static_cast<uint32_t>(cells);
}

void PrefixCache::Refresh() {
  stats_.entries = static_cast<uint32_t>(entries_.size());
  stats_.cells = CountCells();
}

void PrefixCache::Insert(llama_memory_t memory, llama_seq_id source, const std::vector<llama_token>& tokens, size_t length) {
  if (length == 0 || max_entries_ == 0) {
    return;
  }
  std::vector<llama_token> prefix(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(length));
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].tokens == prefix) {
      Touch(static_cast<int32_t>(i));
      return;
    }
  }
  // An entry that is a strict prefix of the new one adds nothing the new one lacks.
  for (size_t i = 0; i < entries_.size();) {
    if (entries_[i].tokens.size() < prefix.size() && CommonPrefixLength(entries_[i].tokens, prefix) == entries_[i].tokens.size()) {
      llama_memory_seq_rm(memory, entries_[i].seq, -1, -1);
      entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }

  while (entries_.size() >= max_entries_ && EvictOne(memory)) {
  }

  // The free sequence id with the lowest number.
  llama_seq_id seq = first_seq_;
  while (std::any_of(entries_.begin(), entries_.end(), [seq](const Entry& entry) { return entry.seq == seq; })) {
    ++seq;
  }
  llama_memory_seq_rm(memory, seq, -1, -1);
  llama_memory_seq_cp(memory, source, seq, 0, static_cast<llama_pos>(length));
  entries_.push_back({seq, std::move(prefix), ++clock_});
  Refresh();

  // Over budget: evict the least recently used, but never the entry just stored.
  while (stats_.cells > cell_budget_ && entries_.size() > 1) {
    EvictOne(memory);
  }
}

bool PrefixCache::EvictOne(llama_memory_t memory) {
  if (entries_.empty()) {
    return false;
  }
  auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                 [](const Entry& a, const Entry& b) { return a.last_used < b.last_used; });
  llama_memory_seq_rm(memory, oldest->seq, -1, -1);
  entries_.erase(oldest);
  stats_.evictions++;
  Refresh();
  return true;
}

void PrefixCache::Clear(llama_memory_t memory) {
  for (const auto& entry : entries_) {
    llama_memory_seq_rm(memory, entry.seq, -1, -1);
  }
  entries_.clear();
  Refresh();
}

}  // namespace xguard
