// Allocator micro-benchmark in the style of RMM's random_allocations: keep L
// blocks live (1k, 10k, 100k), then repeatedly free a random one and allocate
// a new one of random size (256 B .. 1 MB, log-uniform). Reports the cost of
// one allocate+free pair.
//
//   build/bench/bench_allocators --benchmark_min_time=0.2 --benchmark_repetitions=5
//
// Resources: "pool/host" is the pool's own logic over a host upstream (what
// the pool adds on top of the device, measurable without a GPU); "new/host"
// is aligned operator new/delete. With CUDA and a device: "direct" (cudaMalloc
// and cudaFree), "pool/cuda" and "async" (cudaMallocAsync).
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/rng.h"
#include "memory/adaptors.h"
#include "memory/host_resource.h"
#include "memory/pool_resource.h"
#ifdef HISTOCNN_HAVE_CUDA
#include <cuda_runtime.h>

#include "memory/cuda_resources.h"
#endif

namespace histocnn {
namespace {

void random_pairs(benchmark::State& state, MemoryResource& mr) {
  const size_t live_blocks = size_t(state.range(0));
  Rng rng(42);
  auto draw = [&] {
    return size_t(std::exp(rng.uniform(std::log(256.0), std::log(double(1 << 20)))));
  };
  std::vector<std::pair<void*, size_t>> live(live_blocks);
  for (auto& [p, bytes] : live) bytes = draw(), p = mr.allocate(bytes);
  for (auto _ : state) {
    auto& slot = live[rng.below(live_blocks)];
    mr.deallocate(slot.first, slot.second);
    slot.second = draw();
    slot.first = mr.allocate(slot.second);
    benchmark::DoNotOptimize(slot.first);
  }
  for (auto& [p, bytes] : live) mr.deallocate(p, bytes);
  state.counters["reserved_MB"] = double(mr.stats().peak_bytes_reserved) / 1e6;
  state.SetLabel(mr.name());
}

void BM_HostNew(benchmark::State& state) {
  HostResource host;
  random_pairs(state, host);
}

void BM_PoolOverHost(benchmark::State& state) {
  HostResource host;
  PoolOptions options;
  options.initial_bytes = size_t(state.range(0)) * (100 << 10);  // ~ the expected live set
  PoolResource pool(host, options);
  random_pairs(state, pool);
}

// The pool as a run uses it: under the statistics adaptor.
void BM_PoolWithStatistics(benchmark::State& state) {
  HostResource host;
  PoolOptions options;
  options.initial_bytes = size_t(state.range(0)) * (100 << 10);
  PoolResource pool(host, options);
  StatisticsAdaptor stats(pool);
  random_pairs(state, stats);
}

BENCHMARK(BM_HostNew)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolOverHost)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PoolWithStatistics)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

#ifdef HISTOCNN_HAVE_CUDA
bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

void BM_CudaDirect(benchmark::State& state) {
  if (!have_device()) return state.SkipWithError("no CUDA device");
  CudaDirectResource direct;
  random_pairs(state, direct);
}

void BM_CudaPool(benchmark::State& state) {
  if (!have_device()) return state.SkipWithError("no CUDA device");
  CudaDirectResource direct;
  PoolOptions options;
  options.initial_bytes = size_t(state.range(0)) * (100 << 10);
  PoolResource pool(direct, options);
  random_pairs(state, pool);
}

void BM_CudaAsync(benchmark::State& state) {
  if (!have_device()) return state.SkipWithError("no CUDA device");
  CudaAsyncResource async;
  random_pairs(state, async);
  cudaDeviceSynchronize();
}

BENCHMARK(BM_CudaDirect)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CudaPool)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CudaAsync)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);
#endif

}  // namespace
}  // namespace histocnn

BENCHMARK_MAIN();
