// Memory resources and the static planner, on a host upstream: randomized
// stress with invariants (no overlap, alignment, exact statistics, full
// coalescing), growth and refusal, stream-safe reuse, concurrency (run the
// suite under TSan: scripts/test.sh does), and planner properties.
#include <gtest/gtest.h>

#include <map>
#include <memory>
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

// A model of GPU streams with vector clocks, to check the pool's stream
// ordering without a GPU. Work submitted to stream S advances S's own clock;
// an event recorded on S captures S's clock; a stream waiting on an event takes
// the element-wise maximum. Every byte freed on stream T after T's clock reached
// t may be handed to stream S only when S == T or S's clock for T is >= t:
// otherwise the GPU could write it while T's kernels still read it.
class StreamOrderChecker : public StreamEvents {
 public:
  using Clock = std::map<StreamHandle, uint64_t>;
  void* create() override {
    std::lock_guard<std::mutex> lock(m_);
    events_.push_back(std::make_unique<Clock>());
    live_events++;
    return events_.back().get();
  }
  void record(void* e, StreamHandle s) override {
    std::lock_guard<std::mutex> lock(m_);
    *static_cast<Clock*>(e) = clocks_[s];
    records++;
  }
  void wait(StreamHandle s, void* e) override {
    std::lock_guard<std::mutex> lock(m_);
    for (const auto& [stream, t] : *static_cast<Clock*>(e))
      clocks_[s][stream] = std::max(clocks_[s][stream], t);
    waits++;
  }
  void destroy(void*) override {
    std::lock_guard<std::mutex> lock(m_);
    live_events--;
  }
  // Call after the pool handed [p, p + bytes) to stream s; counts violations.
  void allocated(StreamHandle s, char* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(m_);
    char* end = p + bytes;
    auto it = freed_.lower_bound(p);
    if (it != freed_.begin() && std::prev(it)->second.end > p) --it;
    while (it != freed_.end() && it->first < end) {
      const Extent e = it->second;
      char* begin = it->first;
      if (e.stream != s && clocks_[s][e.stream] < e.time) violations++;
      it = freed_.erase(it);
      if (begin < p) freed_[begin] = {p, e.stream, e.time};
      if (e.end > end) it = freed_.emplace(end, Extent{e.end, e.stream, e.time}).first;
    }
    clocks_[s][s]++;  // the kernels that use it
  }
  // Call before handing [p, p + bytes) back to the pool on stream s.
  void freeing(StreamHandle s, char* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(m_);
    const uint64_t t = ++clocks_[s][s];
    freed_[p] = {p + bytes, s, t};
  }
  int violations = 0, records = 0, waits = 0, live_events = 0;

 private:
  struct Extent {
    char* end;
    StreamHandle stream;
    uint64_t time;
  };
  std::mutex m_;
  std::map<StreamHandle, Clock> clocks_;
  std::map<char*, Extent> freed_;
  std::vector<std::unique_ptr<Clock>> events_;
};

StreamHandle stream_no(int i) {
  return reinterpret_cast<StreamHandle>(uintptr_t(i));
}

// Random allocations and frees on several streams; frees often happen on
// another stream than the allocation (and on streams that never allocate).
int cross_stream_violations(StreamEvents* events, StreamOrderChecker& checker, int operations) {
  HostResource host;
  PoolOptions options;
  options.initial_bytes = 4u << 20;
  options.minimum_region = 1u << 20;
  PoolResource pool(host, options, events);
  Rng rng(91);
  struct Live {
    char* p;
    size_t bytes;
  };
  std::vector<Live> live;
  for (int i = 0; i < operations; ++i) {
    if (live.size() < 200 && (live.empty() || rng.below(2))) {
      const StreamHandle s = stream_no(1 + int(rng.below(3)));  // streams 1..3 allocate
      const size_t bytes = 1 + rng.below(64 << 10);
      char* p = static_cast<char*>(pool.allocate(bytes, s));
      checker.allocated(s, p, aligned(bytes));
      live.push_back({p, bytes});
    } else {
      const size_t k = rng.below(live.size());
      const StreamHandle s = stream_no(1 + int(rng.below(4)));  // stream 4 only frees
      checker.freeing(s, live[k].p, aligned(live[k].bytes));
      pool.deallocate(live[k].p, live[k].bytes, s);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (auto& l : live) pool.deallocate(l.p, l.bytes, stream_no(1));
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  return checker.violations;
}

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

TEST(PoolResource, CrossStreamReuseAlwaysWaitsForTheFreeingStream) {
  StreamOrderChecker checker;
  EXPECT_EQ(cross_stream_violations(&checker, checker, 200000), 0);
  EXPECT_GT(checker.waits, 0) << "the workload did reuse memory across streams";
  EXPECT_EQ(checker.live_events, 0) << "every event is destroyed with the pool";
}

TEST(PoolResource, TheStreamCheckerCatchesReuseWithoutWaiting) {
  // The same workload with the events withheld from the pool: the checker
  // must see unordered reuse, or it could not catch a pool that forgets to wait.
  StreamOrderChecker checker;
  EXPECT_GT(cross_stream_violations(nullptr, checker, 20000), 0);
}

TEST(PoolResource, AFreeOnAStreamThatNeverAllocatedIsOrdered) {
  HostResource host;
  StreamOrderChecker checker;
  PoolOptions options;
  options.initial_bytes = 1 << 20;
  PoolResource pool(host, options, &checker);
  char* p = static_cast<char*>(pool.allocate(4096, stream_no(1)));
  checker.allocated(stream_no(1), p, 4096);
  checker.freeing(stream_no(2), p, 4096);  // stream 2 never allocated anything
  pool.deallocate(p, 4096, stream_no(2));
  char* q = static_cast<char*>(pool.allocate(4096, stream_no(3)));
  checker.allocated(stream_no(3), q, 4096);
  EXPECT_EQ(checker.violations, 0);
  pool.deallocate(q, 4096, stream_no(3));
}

TEST(PoolResource, OneStreamNeverWaitsAndReusesAtOnce) {
  HostResource host;
  StreamOrderChecker checker;
  PoolOptions options;
  options.initial_bytes = 1 << 20;
  PoolResource pool(host, options, &checker);
  void* first = pool.allocate(1000, stream_no(1));
  pool.deallocate(first, 1000, stream_no(1));
  for (int i = 0; i < 1000; ++i) {
    void* p = pool.allocate(1000, stream_no(1));
    EXPECT_EQ(p, first) << "freed memory is reused by its stream at once";
    pool.deallocate(p, 1000, stream_no(1));
  }
  EXPECT_EQ(checker.records + checker.waits, 0) << "one stream: no events";
}

TEST(PoolResource, RequestsNearSizeMaxFailInsteadOfWrapping) {
  HostResource host;
  PoolResource pool(host, PoolOptions{});
  for (size_t bytes : {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - kAlignment + 1, SIZE_MAX / 2 + 1})
    EXPECT_THROW(pool.allocate(bytes), OutOfMemory) << bytes;
  void* a = pool.allocate(100);
  void* b = pool.allocate(100);
  EXPECT_NE(a, b);
  pool.deallocate(a, 100);
  pool.deallocate(b, 100);
  EXPECT_THROW(host.allocate(SIZE_MAX), OutOfMemory);
}

TEST(PoolResource, ConcurrentThreadsAndStreams) {
  HostResource host;
  StreamOrderChecker checker;
  PoolOptions options;
  options.initial_bytes = 8 << 20;
  PoolResource pool(host, options, &checker);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      Rng rng(t);
      const StreamHandle stream = stream_no(t + 1);
      std::vector<std::pair<void*, size_t>> mine;
      for (int i = 0; i < 20000; ++i) {
        if (mine.size() < 50 && rng.below(2)) {
          const size_t bytes = 1 + rng.below(64 << 10);
          auto* p = static_cast<unsigned char*>(pool.allocate(bytes, stream));
          checker.allocated(stream, reinterpret_cast<char*>(p), aligned(bytes));
          p[0] = p[bytes - 1] = uint8_t(t);  // touch: TSan/ASan see real use
          mine.push_back({p, bytes});
        } else if (!mine.empty()) {
          auto [p, bytes] = mine.back();
          EXPECT_EQ(static_cast<unsigned char*>(p)[0], uint8_t(t));
          checker.freeing(stream, static_cast<char*>(p), aligned(bytes));
          pool.deallocate(p, bytes, stream);
          mine.pop_back();
        }
      }
      for (auto [p, bytes] : mine) pool.deallocate(p, bytes, stream);
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(pool.stats().bytes_in_use, 0u);
  EXPECT_EQ(checker.violations, 0);
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
