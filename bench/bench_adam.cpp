// Adam over the paper's network's parameter vector: the reference loop
// (nn/adam.h, what the CPU step ran until 2026-12-02) against the CPU step's
// vectorised update (backends/cpu/adam_kernel.h), on 1 and 2 threads. The
// lengths are the network's parameter counts at 32 px (45,218) and 200 px
// (2,195,826). Reports parameters per second and bytes moved per second
// (reads of w, g, m, v and writes of w, m, v: 28 bytes per parameter).
//
//   build/bench/bench_adam --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <vector>

#include "backends/cpu/adam_kernel.h"

namespace histocnn::cpu {
namespace {

enum class Version { kReference, kVectorised };

void run(benchmark::State& state, Version version) {
  const int64_t n = state.range(0);
  const int threads = int(state.range(1));
  const auto size = static_cast<size_t>(n);
  std::vector<float> w(size, 0.5f), g(size, 1e-3f), m(size, 0.0f), v(size, 0.0f);
  const int before = omp_get_max_threads();
  omp_set_num_threads(threads);
  int64_t t = 0;
  for (auto _ : state) {
    ++t;
    if (version == Version::kReference)
      histocnn::adam_update(AdamConfig{}, t, n, w.data(), g.data(), m.data(), v.data());
    else
      adam_update_simd(AdamConfig{}, t, n, w.data(), g.data(), m.data(), v.data());
    benchmark::DoNotOptimize(w.data());
  }
  omp_set_num_threads(before);
  state.counters["params/s"] =
      benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes/s"] = benchmark::Counter(
      28.0 * double(n), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1024);
}

void Reference(benchmark::State& state) {
  run(state, Version::kReference);
}
void Vectorised(benchmark::State& state) {
  run(state, Version::kVectorised);
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {45218, 2195826})
    for (int64_t threads : {1, 2}) b->Args({n, threads});
  b->ArgNames({"params", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(Reference)->Apply(Shapes);
BENCHMARK(Vectorised)->Apply(Shapes);

}  // namespace
}  // namespace histocnn::cpu

BENCHMARK_MAIN();
