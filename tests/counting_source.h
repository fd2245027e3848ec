// A HostBufferSource for tests: ordinary memory, every live allocation
// recorded (a page-locking source's registry stands in as `ranges`), every
// return checked against what was taken.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "core/address_ranges.h"
#include "core/host_buffers.h"

namespace histocnn::testing {

class CountingSource final : public HostBufferSource {
 public:
  void* allocate(size_t bytes) override {
    void* p = ::operator new(bytes, std::align_val_t(kHostBufferAlignment));
    std::lock_guard<std::mutex> lock(mutex_);
    live_[p] = bytes;
    ++allocations;
    ranges.add(p, bytes);
    return p;
  }
  void deallocate(void* p, size_t bytes) noexcept override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = live_.find(p);
      if (it == live_.end() || it->second != bytes) ++mismatched;
      if (it != live_.end()) live_.erase(it);
      ++deallocations;
      ranges.remove(p);
    }
    ::operator delete(p, std::align_val_t(kHostBufferAlignment));
  }
  std::string name() const override { return "counting"; }
  size_t live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.size();
  }
  std::atomic<int> allocations{0}, deallocations{0}, mismatched{0};
  AddressRanges ranges;

 private:
  mutable std::mutex mutex_;
  std::map<void*, size_t> live_;
};

}  // namespace histocnn::testing
