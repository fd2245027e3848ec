// Adaptors (statistics, limit, logging + replay), the step's memory placement
// (planned arena vs per tensor), the resource chain, and the planner's
// in-place and overflow rules.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "backends/backend.h"
#include "core/error.h"
#include "memory/adaptors.h"
#include "memory/host_resource.h"
#include "memory/memory_engine.h"
#include "memory/pool_resource.h"
#include "memory/step_memory.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::TempDir;

TEST(StatisticsAdaptor, CountsForAnyResourceAndTakesTheReserveFromAPool) {
  HostResource host;
  StatisticsAdaptor direct(host);
  void* a = direct.allocate(1000);
  void* b = direct.allocate(3000);
  direct.deallocate(a, 1000);
  MemoryStats s = direct.stats();
  EXPECT_EQ(s.allocations, 2u);
  EXPECT_EQ(s.deallocations, 1u);
  EXPECT_EQ(s.bytes_in_use, 3000u);
  EXPECT_EQ(s.peak_bytes_in_use, 4000u);
  EXPECT_EQ(s.upstream_allocations, 2u) << "no pool: every allocation is a device malloc";
  EXPECT_EQ(s.bytes_reserved, 3000u);
  direct.deallocate(b, 3000);

  PoolOptions po;
  po.initial_bytes = 1 << 20;
  PoolResource pool(host, po);
  StatisticsAdaptor pooled(pool);
  for (int i = 0; i < 10; ++i) pooled.deallocate(pooled.allocate(5000), 5000);
  s = pooled.stats();
  EXPECT_EQ(s.allocations, 10u);
  EXPECT_EQ(s.upstream_allocations, 1u) << "one region, reserved up front";
  EXPECT_EQ(s.served_from_pool, 10u);
  EXPECT_EQ(s.bytes_reserved, size_t(1) << 20);
  EXPECT_EQ(s.to_json()["device_malloc_calls"], 1);
}

TEST(LimitAdaptor, RefusesPastTheLimitNamingIt) {
  HostResource host;
  LimitAdaptor limit(host, 1 << 20);
  void* a = limit.allocate(700 << 10);
  try {
    limit.allocate(400 << 10);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("limit is 1 MB (--gpu-mem-limit)"), std::string::npos)
        << e.what();
  }
  void* b = limit.allocate(300 << 10);  // still fits
  limit.deallocate(a, 700 << 10);
  limit.deallocate(b, 300 << 10);
  // Under a pool, the limit bounds the pool's reserve.
  PoolOptions po;
  po.minimum_region = 512 << 10;
  PoolResource pool(limit, po);
  void* c = pool.allocate(600 << 10);
  EXPECT_THROW(pool.allocate(600 << 10), OutOfMemory);
  pool.deallocate(c, 600 << 10);
}

TEST(LoggingAdaptor, WritesAReplayableLog) {
  TempDir dir;
  HostResource host;
  PoolOptions po;
  po.initial_bytes = 4 << 20;
  MemoryStats original;
  {
    PoolResource pool(host, po);
    LoggingAdaptor logged(pool, dir / "log.csv");
    StatisticsAdaptor stats(logged);
    Rng rng(4);
    std::vector<std::pair<void*, size_t>> live;
    for (int i = 0; i < 2000; ++i) {
      if (live.size() < 40 && (live.empty() || rng.below(2))) {
        const size_t n = 1 + rng.below(100000);
        live.push_back({stats.allocate(n, reinterpret_cast<StreamHandle>(rng.below(2))), n});
      } else {
        stats.deallocate(live.back().first, live.back().second);
        live.pop_back();
      }
    }
    original = stats.stats();  // the rest stays live: the replay frees it
  }
  const auto events = read_allocation_log(dir / "log.csv");
  EXPECT_EQ(events.size(), original.allocations + original.deallocations);
  PoolResource pool(host, po);
  StatisticsAdaptor replayed(pool);
  replay_allocation_log(events, replayed);
  const MemoryStats s = replayed.stats();
  EXPECT_EQ(s.allocations, original.allocations);
  EXPECT_EQ(s.peak_bytes_in_use, original.peak_bytes_in_use);
  EXPECT_EQ(s.bytes_in_use, 0u);

  std::ofstream(dir / "bad.csv") << "a,1,0x0,0x10,notanumber,5\n";
  EXPECT_THROW(read_allocation_log(dir / "bad.csv"), Error);
  // A log cut inside its last number (a killed run, a full disk) still
  // parses as numbers: only the missing newline tells.
  std::ofstream(dir / "cut.csv") << "a,1,0x0,0x10,4096,1200\nf,1,0x0,0x10,4096,12";
  try {
    read_allocation_log(dir / "cut.csv");
    ADD_FAILURE() << "a cut log was read";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir / "cut.csv") + ":2: the last line is cut short (the log was not finished)");
  }
}

TEST(MemoryEngine, AnAllocationLogOnAFullDiskSaysItIsIncomplete) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  HostResource host;
  ::testing::internal::CaptureStderr();
  {
    LoggingAdaptor log(host, "/dev/full");  // every write fails with ENOSPC
    for (int i = 0; i < 100; ++i) log.deallocate(log.allocate(64), 64);
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "histocnn: /dev/full: the allocation log is incomplete: No space left on device\n");
}

// Records what StepMemory does.
std::vector<TensorLifetime> chain_of_tensors() {
  // op:   0    1    2    3
  // a    [0 -- 1]
  // b         [1 -- 2]
  // c              [2 -- 3]   in place of b (b's last use is c's first)
  std::vector<TensorLifetime> t = {{"a", 1000, 0, 1}, {"b", 2000, 1, 2}, {"c", 1500, 2, 3}};
  t[2].in_place_of = 1;
  return t;
}

TEST(StepMemory, PlannedMakesOneAllocationAndNonePerStep) {
  HostResource host;
  StatisticsAdaptor stats(host);
  std::vector<void*> bound(3, nullptr);
  {
    StepMemory memory(chain_of_tensors(), 4, stats, nullptr, /*planned=*/true,
                      [&](size_t i, void* p) { bound[i] = p; });
    EXPECT_EQ(stats.stats().allocations, 1u);
    EXPECT_EQ(bound[1], bound[2]) << "in place";
    EXPECT_NE(bound[0], bound[1]);
    for (int step = 0; step < 5; ++step)
      for (int k = 0; k < 4; ++k) {
        memory.begin_op(k);
        memory.end_op(k);
      }
    EXPECT_EQ(stats.stats().allocations, 1u);
    EXPECT_EQ(memory.allocator_calls(), 1u);
  }
  EXPECT_EQ(stats.stats().bytes_in_use, 0u);
}

TEST(StepMemory, PerTensorAllocatesAtFirstUseAndFreesAfterLast) {
  HostResource host;
  StatisticsAdaptor stats(host);
  std::vector<void*> bound(3, nullptr);
  StepMemory memory(chain_of_tensors(), 4, stats, nullptr, /*planned=*/false,
                    [&](size_t i, void* p) { bound[i] = p; });
  EXPECT_EQ(stats.stats().allocations, 0u);
  for (int step = 0; step < 3; ++step) {
    memory.begin_op(0);
    EXPECT_EQ(stats.stats().bytes_in_use, 1000u);
    memory.end_op(0);
    memory.begin_op(1);
    EXPECT_EQ(stats.stats().bytes_in_use, 3000u);
    memory.end_op(1);  // a freed
    EXPECT_EQ(stats.stats().bytes_in_use, 2000u);
    memory.begin_op(2);  // c takes over b's buffer: no allocation
    EXPECT_EQ(bound[2], bound[1]);
    EXPECT_EQ(stats.stats().bytes_in_use, 2000u);
    memory.end_op(2);
    memory.begin_op(3);
    memory.end_op(3);
    EXPECT_EQ(stats.stats().bytes_in_use, 0u);
  }
  EXPECT_EQ(stats.stats().allocations, 6u);  // a and b, three steps
  EXPECT_EQ(memory.allocator_calls(), 12u);
  memory.begin_op(0);
  memory.abandon_step();  // an exception mid-step frees what it held
  EXPECT_EQ(stats.stats().bytes_in_use, 0u);
}

TEST(MemoryPlan, InPlaceSharesAndRejectsImpossibleRequests) {
  auto t = chain_of_tensors();
  const MemoryPlan plan = plan_memory(t);
  EXPECT_EQ(plan.offsets[1], plan.offsets[2]);
  EXPECT_NO_THROW(validate_plan(t, plan));
  EXPECT_LE(plan.arena_bytes, 3072u + 256);
  t[2].in_place_of = 0;  // a's last use (1) is not c's first use (2)
  EXPECT_THROW(plan_memory(t), std::invalid_argument);
  std::vector<TensorLifetime> huge = {{"x", SIZE_MAX - 10, 0, 1}, {"y", SIZE_MAX / 2, 0, 1}};
  EXPECT_THROW(plan_memory(huge), std::invalid_argument) << "never wraps";
}

TEST(Device, SelectedOnceByKindWithUnknownKindsNamed) {
  const Device cpu = select_device("cpu", 3);
  EXPECT_FALSE(cpu.is_cuda());
  EXPECT_EQ(cpu.name(), "cpu");
  EXPECT_EQ(cpu.ordinal, 0);
  try {
    select_device("tpu");
    FAIL() << "an unknown device was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--device: unknown device 'tpu' (cpu, cuda)");
  }
  const auto devices = available_devices();
  if (std::find(devices.begin(), devices.end(), "cuda") == devices.end()) {
    // No GPU here (or no CUDA build): the one place that would take it says why.
    EXPECT_THROW(select_device("cuda"), Error);
  } else {
    const Device gpu = select_device("cuda", 0);
    EXPECT_TRUE(gpu.is_cuda());
    EXPECT_EQ(gpu.name(), "cuda:" + std::to_string(gpu.ordinal));
    MemoryEngineOptions o;
    o.device = gpu;
    EXPECT_EQ(MemoryEngine(o).to_json()["device"], "cuda");
  }
}

TEST(MemoryEngine, BuildsTheChainForEveryAllocatorOnTheHost) {
  for (const char* allocator : {"direct", "pool", "plan"}) {
    MemoryEngineOptions o;
    o.config.allocator = allocator;
    o.config.gpu_mem_pool = 16;  // MB
    MemoryEngine engine(o);
    EXPECT_EQ(engine.planned(), std::string(allocator) == "plan");
    void* p = engine.resource().allocate(1000);
    engine.resource().deallocate(p, 1000);
    const auto j = engine.to_json();
    EXPECT_EQ(j["allocator"], allocator);
    EXPECT_EQ(j["allocations"], 1);
    EXPECT_EQ(j["device_malloc_calls"], std::string(allocator) == "pool" ? 1 : 1);
    EXPECT_EQ(j["reserve_bytes"], std::string(allocator) == "pool" ? 16u << 20 : 0u);
  }
  MemoryEngineOptions async;
  async.config.allocator = "async";
  EXPECT_THROW(MemoryEngine{async}, Error);
  EXPECT_EQ(parse_byte_size("4GB", "--x"), size_t(4) << 30);
  EXPECT_EQ(parse_byte_size("512", "--x"), size_t(512) << 20);
  EXPECT_THROW(parse_byte_size("4XB", "--x"), Error);
  EXPECT_THROW(parse_byte_size("-1", "--x"), Error);
}

// The CPU step through each allocator: identical results, and the planned
// arena makes no allocator call per step while per-tensor placement does.
TEST(CpuStepMemory, PlannedStepsMakeZeroAllocatorCallsAndAllocatorsAgree) {
  const ModelSpec spec = default_model_spec();
  const NetworkShape shape = infer_shapes(spec, 4, 48, 48);
  const auto images = testing::random_vector(size_t(4) * 3 * 48 * 48, 3, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 1, 0};
  std::vector<float> weights[3];
  int index = 0;
  for (const char* allocator : {"plan", "pool", "direct"}) {
    MemoryEngineOptions mo;
    mo.config.allocator = allocator;
    MemoryEngine engine(mo);
    StepOptions so;
    so.dropout_seed = 5;
    so.device.memory = &engine.resource();
    so.device.planned = engine.planned();
    auto step = make_backend(cpu_device())->compile(spec, shape, so);
    step->set_parameters(Parameters::glorot(shape, 1));
    step->train(images.data(), labels.data(), 4);  // first step: warm
    const uint64_t calls = engine.stats().allocations + engine.stats().deallocations;
    for (int s = 0; s < 3; ++s) step->train(images.data(), labels.data(), 3);
    const uint64_t per_step =
        (engine.stats().allocations + engine.stats().deallocations - calls) / 3;
    if (engine.planned())
      EXPECT_EQ(per_step, 0u) << "planned arena: zero allocator calls per step";
    else
      EXPECT_GT(per_step, 10u) << allocator << ": a call per tensor";
    EXPECT_EQ(step->memory().allocator_calls,
              engine.stats().allocations + engine.stats().deallocations);
    weights[index++] = step->parameters().values;
  }
  EXPECT_EQ(weights[0], weights[1]) << "plan and pool give identical weights";
  EXPECT_EQ(weights[0], weights[2]) << "plan and direct give identical weights";
}

}  // namespace
}  // namespace histocnn
