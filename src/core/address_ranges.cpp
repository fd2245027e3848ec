#include "core/address_ranges.h"

#include <stdexcept>

namespace histocnn {

void AddressRanges::add(const void* p, size_t bytes) {
  const auto begin = reinterpret_cast<uintptr_t>(p);
  if (bytes == 0 || begin > UINTPTR_MAX - bytes)
    throw std::invalid_argument("AddressRanges::add: an empty or wrapping range");
  const uintptr_t end = begin + bytes;
  std::lock_guard<std::mutex> lock(mutex_);
  auto next = ranges_.lower_bound(begin);
  if (next != ranges_.end() && next->first < end)
    throw std::invalid_argument("AddressRanges::add: the range overlaps one already added");
  if (next != ranges_.begin() && std::prev(next)->second > begin)
    throw std::invalid_argument("AddressRanges::add: the range overlaps one already added");
  ranges_.emplace(begin, end);
}

bool AddressRanges::remove(const void* p) {
  std::lock_guard<std::mutex> lock(mutex_);
  return ranges_.erase(reinterpret_cast<uintptr_t>(p)) == 1;
}

bool AddressRanges::covers(const void* p, size_t bytes) const {
  const auto begin = reinterpret_cast<uintptr_t>(p);
  if (begin > UINTPTR_MAX - bytes) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  auto after = ranges_.upper_bound(begin);  // the first range starting past p
  if (after == ranges_.begin()) return false;
  const auto& [first, last] = *std::prev(after);
  return first <= begin && begin + bytes <= last;
}

size_t AddressRanges::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ranges_.size();
}

}  // namespace histocnn
