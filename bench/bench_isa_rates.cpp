// How many 512-bit fp32 FMAs (`vfmadd231ps`) and bf16 dot products
// (`vdpbf16ps`, two multiply-adds a lane) one core retires a second: twelve
// independent accumulators each, enough to cover either instruction's
// latency, so the rate is the core's throughput. Whether a bf16 kernel can
// pay on this CPU: on the AMX Xeon VM `vdpbf16ps` ran at a quarter of the
// FMA's rate, half its multiply-adds (docs/results/cpu-fused-conv1.md); a
// CPU where both run at one rate does twice the multiply-adds in bf16.
// BM_Fp32FmaWithAdds: the FMAs with add chains beside them, whether adds
// have pipes of their own. "items" are instructions (FMAs); MAC_per_second
// counts multiply-adds.
//
//   taskset -c 0 build/bench/bench_isa_rates --benchmark_repetitions=3
//     --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include "backends/cpu/avx512.h"

namespace {

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h (GCC bug 105593)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
constexpr int kChains = 12;

// Twelve independent FMA chains (`vfmadd231ps zmm`), and `adds` independent
// add chains beside them (`vaddps zmm`; 6 or 12: a 2:1 or 1:1 mix): whether
// the core adds on pipes of their own (AMD Zen: the mix takes the FMAs'
// time) or on the FMA ports (Intel's 512-bit adds: the time grows with the
// adds). A Winograd transform's adds are free on the first kind and cost as
// much as multiply-adds on the second (docs/results/cpu-conv1-kernels.md).
template <int adds>
__attribute__((target("avx512f"), noinline)) float fma_add_chains(int64_t rounds) {
  __m512 acc[kChains], sum[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = sum[i] = _mm512_set1_ps(float(i));
  __m512 x = _mm512_set1_ps(1.0001f);
  const __m512 y = _mm512_set1_ps(0.9999f);
  for (int64_t n = 0; n < rounds; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(x, y, acc[i]);
#pragma GCC unroll 12
    for (int i = 0; i < adds; ++i) sum[i] = _mm512_add_ps(sum[i], x);
    asm volatile("" : "+v"(x));  // the operands stay live: nothing hoisted
  }
  __m512 total = acc[0];
  for (int i = 1; i < kChains; ++i) total = _mm512_add_ps(total, acc[i]);
  for (int i = 0; i < adds; ++i) total = _mm512_add_ps(total, sum[i]);
  return _mm512_reduce_add_ps(total);
}

__attribute__((target("avx512f,avx512bf16"), noinline)) float dpbf16_chains(int64_t rounds) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi16(0x3f80));  // 1.0 in bf16
  const __m512bh y = x;
  for (int64_t n = 0; n < rounds; ++n) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    asm volatile("" : "+v"(x));
  }
  __m512 sum = acc[0];
  for (int i = 1; i < kChains; ++i) sum = _mm512_add_ps(sum, acc[i]);
  return _mm512_reduce_add_ps(sum);
}
#pragma GCC diagnostic pop

constexpr int64_t kRounds = 1 << 20;

void count(benchmark::State& state, double macs_per_instruction) {
  const double instructions = double(kChains) * double(kRounds);
  state.SetItemsProcessed(int64_t(instructions) * state.iterations());
  state.counters["MAC_per_second"] = benchmark::Counter(
      instructions * macs_per_instruction, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Fp32Fma(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) return state.SkipWithError("no AVX-512");
  for (auto _ : state) benchmark::DoNotOptimize(fma_add_chains<0>(kRounds));
  count(state, 16);
}
BENCHMARK(BM_Fp32Fma)->Unit(benchmark::kMillisecond)->UseRealTime();

// items: the FMAs (the adds ride along); the time against BM_Fp32Fma's
// tells whether they cost.
template <int adds>
void BM_Fp32FmaWithAdds(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512f")) return state.SkipWithError("no AVX-512");
  for (auto _ : state) benchmark::DoNotOptimize(fma_add_chains<adds>(kRounds));
  count(state, 16);
}
BENCHMARK(BM_Fp32FmaWithAdds<6>)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Fp32FmaWithAdds<12>)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Bf16DotProduct(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512bf16")) return state.SkipWithError("no AVX512-BF16");
  for (auto _ : state) benchmark::DoNotOptimize(dpbf16_chains(kRounds));
  count(state, 32);
}
BENCHMARK(BM_Bf16DotProduct)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

}  // namespace

BENCHMARK_MAIN();
