// A set of disjoint address ranges, asked whether it covers a span: how the
// CUDA step tells a batch in page-locked memory it made (DMA from it
// directly) from one anywhere else (copied to its staging buffer first).
// Thread-safe: loader threads add ranges while the training thread asks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace histocnn {

class AddressRanges {
 public:
  // requires: bytes > 0 and [p, p + bytes) overlaps no range of the set
  //           (throws std::invalid_argument otherwise: the set is unchanged).
  void add(const void* p, size_t bytes);
  // Removes the range that starts at p; false when none does.
  bool remove(const void* p);
  // True when [p, p + bytes) lies inside one range of the set (bytes 0: p
  // inside or at the end of one).
  bool covers(const void* p, size_t bytes) const;
  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::map<uintptr_t, uintptr_t> ranges_;  // begin -> end (exclusive)
};

}  // namespace histocnn
