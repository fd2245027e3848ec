// Memory resources and the static planner, on a host upstream: randomized
// stress with invariants (no overlap, alignment, exact statistics, full
// coalescing), growth and refusal, stream-safe reuse, concurrency (run the
// suite under TSan: scripts/test.sh does), and planner properties.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <thread>

#include "core/rng.h"
#include "memory/host_resource.h"
#include "memory/memory_plan.h"
#include "memory/pool_resource.h"

namespace histocnn {
namespace {

size_t aligned(size_t b) {
  return (std::max<size_t>(b, 1) + kAlignment - 1) / kAlignment * kAlignment;
}

// Records event traffic; events are integers.
class RecordingEvents : public StreamEvents {
 public:
  void* record(StreamHandle s) override {
    std::lock_guard<std::mutex> lock(m);
    recorded++;
    live++;
    last_stream = s;
    return reinterpret_cast<void*>(++next);
  }
  void wait(StreamHandle, void*) override {
    std::lock_guard<std::mutex> lock(m);
    waits++;
  }
  void release(void*) override {
    std::lock_guard<std::mutex> lock(m);
    live--;
  }
  std::mutex m;
  uintptr_t next = 0;
  int recorded = 0, waits = 0, live = 0;
  StreamHandle last_stream = nullptr;
};

TEST(PoolResource, MillionRandomOperationsKeepEveryInvariant) {
  HostResource host;
  PoolOptions options;
  options.initial_bytes = 64u << 20;
  options.minimum_region = 16u << 20;
  PoolResource pool(host, options);
  Rng rng(2024);
  std::map<char*, size_t> live;  // pointer -> requested bytes
  size_t in_use = 0;
  auto check_no_overlap = [&](char* p, size_t bytes) {
    auto it = live.lower_bound(p);
    if (it != live.end()) {
      ASSERT_GE(it->first, p + aligned(bytes)) << "overlaps the next block";
    }
    if (it != live.begin()) {
      --it;
      ASSERT_LE(it->first + aligned(it->second), p) << "overlaps the previous block";
    }
  };
  const int kOperations = 1'000'000;
  for (int op = 0; op < kOperations; ++op) {
    // Phases with 1k .. 20k live blocks, mixed sizes from 1 B to 1 MB (log-uniform).
    const size_t target = 1000 + size_t(19000 * (0.5 + 0.5 * std::sin(op / 40000.0)));
    const bool do_allocate =
        live.empty() || (live.size() < target ? rng.below(10) < 7 : rng.below(10) < 3);
    if (do_allocate) {
      const size_t bytes = size_t(std::exp(rng.uniform(0, std::log(1 << 20))));
      char* p = static_cast<char*>(pool.allocate(bytes));
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % kAlignment, 0u);
      check_no_overlap(p, bytes);
      live[p] = bytes;
      in_use += aligned(bytes);
    } else {
      auto it = live.begin();
      std::advance(it, long(rng.below(std::min<size_t>(live.size(), 64))));  // mostly old blocks
      pool.deallocate(it->first, it->second);
      in_use -= aligned(it->second);
      live.erase(it);
    }
    if (op % 50'000 == 0) {
      const MemoryStats s = pool.stats();
      ASSERT_EQ(s.bytes_in_use, in_use);
      ASSERT_EQ(s.bytes_in_use + s.free_bytes, s.bytes_reserved);
      ASSERT_LE(s.largest_free_block, s.free_bytes);
    }
  }
  for (auto& [p, bytes] : live) pool.deallocate(p, bytes);
  const MemoryStats s = pool.stats();
  EXPECT_EQ(s.bytes_in_use, 0u);
  EXPECT_EQ(s.free_bytes, s.bytes_reserved);
  EXPECT_EQ(pool.free_block_count(), pool.region_count())
      << "everything coalesces back, one block per region";
  EXPECT_EQ(s.allocations, s.deallocations);
  EXPECT_EQ(s.upstream_allocations, pool.region_count());
  EXPECT_EQ(s.served_from_pool + s.upstream_allocations - 1, s.allocations)
      << "every allocation but the ones that grew the pool came from the reserve";
}

TEST(PoolResource, GrowsGeometricallyOrRefusesWithAClearError) {
  HostResource host;
  PoolOptions grow;
  grow.initial_bytes = 1 << 20;
  grow.minimum_region = 1 << 20;
  PoolResource pool(host, grow);
  void* a = pool.allocate(900 << 10);
  void* b = pool.allocate(900 << 10);  // does not fit: a new region of >= 1 MB
  EXPECT_EQ(pool.region_count(), 2u);
  void* c = pool.allocate(3 << 20);  // a region of max(request, reserved * 1)
  EXPECT_EQ(pool.region_count(), 3u);
  EXPECT_GE(pool.stats().bytes_reserved, 5u << 20);
  pool.deallocate(a, 900 << 10);
  pool.deallocate(b, 900 << 10);
  pool.deallocate(c, 3 << 20);

  PoolOptions fixed;
  fixed.initial_bytes = 1 << 20;
  fixed.grow = false;
  PoolResource small(host, fixed);
  void* x = small.allocate(600 << 10);
  try {
    small.allocate(600 << 10);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("requested 0.6 MB"), std::string::npos) << what;
    EXPECT_NE(what.find("reserved 1.0 MB"), std::string::npos) << what;
    EXPECT_NE(what.find("largest free block 0.4 MB"), std::string::npos) << what;
  }
  small.deallocate(x, 600 << 10);

  PoolOptions capped;
  capped.maximum_bytes = 2 << 20;
  capped.minimum_region = 1 << 20;
  PoolResource limited(host, capped);
  EXPECT_THROW(limited.allocate(3 << 20), OutOfMemory);
}

TEST(PoolResource, ReuseAcrossStreamsWaitsOnEventsAndSingleStreamRecordsNone) {
  HostResource host;
  RecordingEvents events;
  PoolOptions options;
  options.initial_bytes = 1 << 20;
  {
    PoolResource pool(host, options, &events);
    for (int i = 0; i < 100; ++i) pool.deallocate(pool.allocate(1000), 1000);
    EXPECT_EQ(events.recorded, 0) << "one stream: no events";
    auto *s1 = reinterpret_cast<StreamHandle>(0x1), *s2 = reinterpret_cast<StreamHandle>(0x2);
    void* p = pool.allocate(4096, s1);  // a new stream is ordered after the default stream
    EXPECT_EQ(events.waits, 1);
    pool.deallocate(p, 4096, s1);  // two streams known now: the free records an event
    EXPECT_EQ(events.recorded, 2);
    void* q =
        pool.allocate(4096, s2);  // new stream s2: waits on both; takes s1's block: waits again
    EXPECT_GE(events.waits, 4);
    pool.deallocate(q, 4096, s2);
    const int before = events.waits;
    void* r = pool.allocate(4096, s2);  // same stream as the last free: no wait needed for it
    EXPECT_LE(events.waits - before, 1);
    pool.deallocate(r, 4096, s2);
  }
  EXPECT_EQ(events.live, 0) << "every recorded event is released";
}

TEST(PoolResource, ConcurrentThreadsAndStreams) {
  HostResource host;
  RecordingEvents events;
  PoolOptions options;
  options.initial_bytes = 8 << 20;
  PoolResource pool(host, options, &events);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Rng rng(t);
      auto* stream = reinterpret_cast<StreamHandle>(uintptr_t(t + 1));
      std::vector<std::pair<void*, size_t>> mine;
      for (int i = 0; i < 20000; ++i) {
        if (mine.size() < 50 && rng.below(2)) {
          const size_t bytes = 1 + rng.below(64 << 10);
          auto* p = static_cast<unsigned char*>(pool.allocate(bytes, stream));
          p[0] = p[bytes - 1] = uint8_t(t);  // touch: TSan/ASan see real use
          mine.push_back({p, bytes});
        } else if (!mine.empty()) {
          auto [p, bytes] = mine.back();
          EXPECT_EQ(static_cast<unsigned char*>(p)[0], uint8_t(t));
          pool.deallocate(p, bytes, stream);
          mine.pop_back();
        }
      }
      for (auto [p, bytes] : mine) pool.deallocate(p, bytes, stream);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  EXPECT_EQ(pool.free_block_count(), pool.region_count());
}

TEST(PoolResource, RejectsForeignPointersAndWrongSizes) {
  HostResource host;
  PoolResource pool(host, PoolOptions{});
  void* p = pool.allocate(1000);
  int local = 0;
  EXPECT_THROW(pool.deallocate(&local, 4), std::logic_error);
  EXPECT_THROW(pool.deallocate(p, 5000), std::logic_error);
  pool.deallocate(p, 1000);
  EXPECT_THROW(pool.deallocate(p, 1000), std::logic_error);
}

TEST(CnmemSemantics, FractionMegabytesAndErrors) {
  const size_t total = size_t(80) << 30;
  EXPECT_EQ(cnmem_reserve_bytes(0, total, "--gpu-mem-pool"), 0u);
  EXPECT_EQ(cnmem_reserve_bytes(1, total, "x"), size_t(double(total) * 0.95) / 256 * 256 + 0)
      << "1 means 95%, as in Theano";
  EXPECT_NEAR(double(cnmem_reserve_bytes(0.5, total, "x")), 0.5 * double(total), 256);
  EXPECT_EQ(cnmem_reserve_bytes(4096, total, "x"), size_t(4096) << 20);
  EXPECT_THROW(cnmem_reserve_bytes(-1, total, "--gpu-mem-pool"), std::exception);
  EXPECT_THROW(cnmem_reserve_bytes(1e9, total, "--gpu-mem-pool"), std::exception);
}

TEST(MemoryPlan, RandomLifetimesNeverCollideAndReuseMemory) {
  Rng rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<TensorLifetime> tensors;
    const int n = 1 + int(rng.below(60)), ops = 1 + int(rng.below(40));
    for (int i = 0; i < n; ++i) {
      const int a = int(rng.below(ops)), b = int(rng.below(ops));
      std::string name = std::to_string(i);
      name.insert(0, 1, 't');  // (not "t" + ...: GCC 12 warns falsely with -Wrestrict)
      tensors.push_back({name, 1 + rng.below(1 << 20), std::min(a, b), std::max(a, b)});
    }
    const MemoryPlan plan = plan_memory(tensors);
    ASSERT_NO_THROW(validate_plan(tensors, plan));
    EXPECT_GE(plan.arena_bytes, plan.lower_bound_bytes);
    EXPECT_LE(plan.arena_bytes, plan.unplanned_bytes);
  }
}

TEST(MemoryPlan, ChainOfLayersReusesBuffersAndValidateCatchesOverlap) {
  // a -> b -> c -> d: each tensor lives for two ops; a and c can share.
  std::vector<TensorLifetime> chain = {
      {"a", 1000, 0, 1}, {"b", 1000, 1, 2}, {"c", 1000, 2, 3}, {"d", 1000, 3, 4}};
  const MemoryPlan plan = plan_memory(chain);
  EXPECT_EQ(plan.arena_bytes, 2 * 1024u);
  EXPECT_EQ(plan.lower_bound_bytes, 2000u);
  MemoryPlan broken = plan;
  broken.offsets[1] = broken.offsets[0];
  EXPECT_THROW(validate_plan(chain, broken), std::logic_error);
  EXPECT_NE(describe_plan(chain, plan).find("arena"), std::string::npos);
}

}  // namespace
}  // namespace histocnn
