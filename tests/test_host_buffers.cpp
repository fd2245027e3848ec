// Host buffers from a source (core/host_buffers.h) and the address ranges the
// CUDA step asks whether a batch lies in its page-locked memory
// (core/address_ranges.h). The page-locked source itself needs a GPU; here a
// counting source stands in for it.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "core/address_ranges.h"
#include "core/host_buffers.h"
#include "counting_source.h"

namespace histocnn {
namespace {

using testing::CountingSource;

TEST(AddressRanges, CoversSpansInsideOneRangeOnly) {
  std::vector<char> memory(1000);
  char* base = memory.data();
  AddressRanges r;
  r.add(base + 100, 100);  // [100, 200)
  r.add(base + 200, 50);   // [200, 250): adjacent, not overlapping
  EXPECT_EQ(r.size(), 2u);
  EXPECT_TRUE(r.covers(base + 100, 100));
  EXPECT_TRUE(r.covers(base + 150, 10));
  EXPECT_TRUE(r.covers(base + 200, 50));
  EXPECT_FALSE(r.covers(base + 150, 60)) << "spans two ranges: not one buffer";
  EXPECT_FALSE(r.covers(base + 99, 2));
  EXPECT_FALSE(r.covers(base + 240, 11));
  EXPECT_FALSE(r.covers(base + 300, 1));
  EXPECT_FALSE(r.covers(base, 1));
  EXPECT_TRUE(r.covers(base + 250, 0)) << "the end of a range, nothing read";
  EXPECT_FALSE(r.covers(reinterpret_cast<void*>(UINTPTR_MAX - 4), 100)) << "a wrapping span";
}

TEST(AddressRanges, RefusesOverlapsAndEmptyRangesLeavingTheSetAsItWas) {
  std::vector<char> memory(1000);
  char* base = memory.data();
  AddressRanges r;
  r.add(base + 100, 100);
  EXPECT_THROW(r.add(base + 150, 10), std::invalid_argument);
  EXPECT_THROW(r.add(base + 50, 51), std::invalid_argument);
  EXPECT_THROW(r.add(base + 199, 5), std::invalid_argument);
  EXPECT_THROW(r.add(base + 100, 100), std::invalid_argument);
  EXPECT_THROW(r.add(base + 400, 0), std::invalid_argument);
  EXPECT_THROW(r.add(reinterpret_cast<void*>(UINTPTR_MAX - 4), 100), std::invalid_argument);
  EXPECT_EQ(r.size(), 1u);
  EXPECT_FALSE(r.remove(base + 150)) << "only a range's start removes it";
  EXPECT_TRUE(r.remove(base + 100));
  EXPECT_FALSE(r.covers(base + 100, 1));
  EXPECT_FALSE(r.remove(base + 100));
  r.add(base + 150, 10);  // free again
  EXPECT_TRUE(r.covers(base + 150, 10));
}

// Loader threads register buffers while the training thread asks.
TEST(AddressRanges, ThreadsAddAndAskAtOnce) {
  std::vector<char> memory(64 * 1024);
  AddressRanges r;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 256; ++k) {
        char* p = memory.data() + (size_t(k) * 4 + size_t(t)) * 64;
        r.add(p, 64);
        EXPECT_TRUE(r.covers(p, 64));
        if (k % 2) {
          EXPECT_TRUE(r.remove(p));
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(r.size(), 4u * 128u);
}

TEST(SourcedAllocator, DrawsFromItsSourceAndGivesBackWhatItTook) {
  auto source = std::make_shared<CountingSource>();
  {
    HostFloats a{SourcedAllocator<float>(source)};
    a.resize(1000);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % kHostBufferAlignment, 0u);
    EXPECT_TRUE(source->ranges.covers(a.data(), 1000 * sizeof(float)));
    a.resize(5000);  // grows: a new buffer, the old one returned
    EXPECT_EQ(source->allocations, 2);
    EXPECT_EQ(source->live(), 1u);
    HostFloats plain(10);  // no source: ordinary memory
    EXPECT_FALSE(source->ranges.covers(plain.data(), 1));
  }
  EXPECT_EQ(source->live(), 0u);
  EXPECT_EQ(source->allocations, source->deallocations);
  EXPECT_EQ(source->mismatched, 0);
}

// A batch moves and swaps between the loader and its caller: the storage
// keeps its source (freed into it), whichever vector ends up holding it.
TEST(SourcedAllocator, TheSourceTravelsWithTheStorage) {
  auto source = std::make_shared<CountingSource>();
  HostFloats plain;
  {
    HostFloats sourced{SourcedAllocator<float>(source)};
    sourced.resize(256, 1.0f);
    const float* storage = sourced.data();
    plain = std::move(sourced);  // as next() hands a batch to a default Batch
    EXPECT_EQ(plain.data(), storage);
    EXPECT_EQ(plain.get_allocator().source(), source);
    HostFloats other(8, 2.0f);
    std::swap(plain, other);
    EXPECT_EQ(other.data(), storage);
    EXPECT_EQ(other.get_allocator().source(), source);
    EXPECT_EQ(plain.get_allocator().source(), nullptr);
  }  // `other` (the sourced storage) freed here
  EXPECT_EQ(source->live(), 0u);
  EXPECT_EQ(source->mismatched, 0);
  EXPECT_EQ(plain.size(), 8u);
}

TEST(SourcedAllocator, RefusesCountsThatWouldOverflow) {
  SourcedAllocator<float> a;
  EXPECT_THROW(a.allocate(size_t(-1) / 2), std::bad_array_new_length);
}

}  // namespace
}  // namespace histocnn
