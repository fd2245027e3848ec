// What the batch loader costs per example: augment_to_chw (uint8 HWC crop ->
// augmented, normalised float CHW), the work every loader thread does beside
// the compute threads. Its CPU time per batch, against the training step's
// time at a thread count, bounds how much the loader can steal from an OpenMP
// team whose static schedule waits for its slowest thread
// (docs/results/cpu-loader.md). hed_jitter_per_pixel: the HED map with an
// exponential per value, as before HedTables (the A/B of that change).
//
//   build/bench/bench_loader --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "data/augment.h"

namespace histocnn {
namespace {

enum class Recipe { kNone, kFlipsRotations, kStainJitter, kHedJitter, kHedJitterPerPixel };

AugmentOptions options_of(Recipe recipe) {
  AugmentOptions o;
  if (recipe != Recipe::kNone) o.flips = o.rotations = true;
  if (recipe == Recipe::kStainJitter) o.stain_jitter = 0.05f;
  if (recipe == Recipe::kHedJitter || recipe == Recipe::kHedJitterPerPixel)
    o.hed_jitter = 0.2f;  // --preset accurate's
  return o;
}

// One example per iteration, cycling over 64 crops (a batch's worth of
// distinct pixels, as the loader reads them) and fresh seeds.
void Augment(benchmark::State& state, Recipe recipe) {
  const int size = int(state.range(0));
  const size_t pixels = size_t(size) * size;
  constexpr int kCrops = 64;
  std::vector<uint8_t> hwc(pixels * 3 * kCrops);
  uint64_t x = 88172645463325252ull;
  for (auto& v : hwc) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v = uint8_t(x >> 56);
  }
  std::vector<float> chw(pixels * 3);
  const AugmentOptions options = options_of(recipe);
  uint64_t seed = 1;
  set_per_pixel_hed(recipe == Recipe::kHedJitterPerPixel);
  for (auto _ : state) {
    const uint8_t* crop = hwc.data() + (seed % kCrops) * pixels * 3;
    augment_to_chw(crop, size, size, options, seed++, chw.data(), Normalization{});
    benchmark::DoNotOptimize(chw.data());
  }
  set_per_pixel_hed(false);
  state.counters["examples/s"] =
      benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

void Sizes(benchmark::internal::Benchmark* b) {
  b->ArgName("px")->Arg(64)->Arg(200)->Unit(benchmark::kMicrosecond);
}
BENCHMARK_CAPTURE(Augment, none, Recipe::kNone)->Apply(Sizes);
BENCHMARK_CAPTURE(Augment, flips_rotations, Recipe::kFlipsRotations)->Apply(Sizes);
BENCHMARK_CAPTURE(Augment, stain_jitter, Recipe::kStainJitter)->Apply(Sizes);
BENCHMARK_CAPTURE(Augment, hed_jitter_per_pixel, Recipe::kHedJitterPerPixel)->Apply(Sizes);
BENCHMARK_CAPTURE(Augment, hed_jitter, Recipe::kHedJitter)->Apply(Sizes);

}  // namespace
}  // namespace histocnn

BENCHMARK_MAIN();
