// What the batch loader costs per example: augment_to_chw (uint8 HWC crop ->
// augmented, normalised float CHW), the work every loader thread does beside
// the compute threads. Its CPU time per batch, against the training step's
// time at a thread count, bounds how much the loader can steal from an OpenMP
// team whose static schedule waits for its slowest thread
// (docs/results/cpu-loader.md). hed_jitter_per_pixel: the HED map with an
// exponential per value, as before HedTables (the A/B of that change).
// AugmentBytes: the same examples as bytes and lookup tables
// (augment_to_bytes, core/byte_images.h), what a loader makes for a step that
// expands them on the device.
// LoaderEpoch: a whole epoch through BatchLoader (its workers and window),
// floats or bytes.
// StagingCopy: one batch's copy, on one thread or split (parallel_copy).
//
//   build/bench/bench_loader --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "core/byte_images.h"
#include "core/parallel_copy.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"

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

// `n` pseudo-random bytes (xorshift): crops with varied pixels, the same every run.
std::vector<uint8_t> noise(size_t n) {
  std::vector<uint8_t> bytes(n);
  uint64_t x = 88172645463325252ull;
  for (auto& v : bytes) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    v = uint8_t(x >> 56);
  }
  return bytes;
}

// One example per iteration, cycling over 64 crops (a batch's worth of
// distinct pixels, as the loader reads them) and fresh seeds.
void Augment(benchmark::State& state, Recipe recipe) {
  const int size = int(state.range(0));
  const size_t pixels = size_t(size) * size;
  constexpr int kCrops = 64;
  const std::vector<uint8_t> hwc = noise(pixels * 3 * kCrops);
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

void AugmentBytes(benchmark::State& state, Recipe recipe) {
  const int size = int(state.range(0));
  const size_t pixels = size_t(size) * size;
  constexpr int kCrops = 64;
  const std::vector<uint8_t> hwc = noise(pixels * 3 * kCrops);
  std::vector<uint8_t> out(pixels * 3);
  std::vector<float> tables(kByteTablesPerImage);
  const AugmentOptions options = options_of(recipe);
  uint64_t seed = 1;
  for (auto _ : state) {
    const uint8_t* crop = hwc.data() + (seed % kCrops) * pixels * 3;
    augment_to_bytes(crop, size, size, options, seed++, out.data(), tables.data(), Normalization{});
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(tables.data());
  }
  state.counters["examples/s"] =
      benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK_CAPTURE(AugmentBytes, none, Recipe::kNone)->Apply(Sizes);
BENCHMARK_CAPTURE(AugmentBytes, flips_rotations, Recipe::kFlipsRotations)->Apply(Sizes);
BENCHMARK_CAPTURE(AugmentBytes, stain_jitter, Recipe::kStainJitter)->Apply(Sizes);

// A whole epoch through BatchLoader as a device step consumes it: the
// paper's 1851 crops at 200 px, no augmentation (as `histocnn bench`), the
// consumer only taking batches. Args: workers, window (batches ahead), batch,
// pool (1: the buffers kept from one epoch's loader to the next, as training
// and `histocnn bench` keep them since 2026-12-04; 0: made and freed each
// epoch, as before), bytes (1: the images as bytes and tables, as for the
// CUDA step since 2026-12-07; 0: floats).
// With more workers than the window holds batches, the workers share each
// batch (they did not before 2026-12-04: a window of 4 kept 4 of a GPU
// step's 15 workers busy). 2 workers and a window of 1 show it on 2 cores.
void LoaderEpoch(benchmark::State& state) {
  const int workers = int(state.range(0)), depth = int(state.range(1));
  const int batch = int(state.range(2)), size = 200, examples = 1851;
  ExampleSet set;
  set.width = set.height = size;
  for (int i = 0; i < examples; ++i) set.examples.push_back({0, i % 2, 0, 0});
  set.pixels = noise(size_t(examples) * size * size * 3);
  std::vector<int> order(examples);
  for (int i = 0; i < examples; ++i) order[size_t(i)] = (i * 7919) % examples;
  const bool pooled = state.range(3) != 0;
  BatchPool pool;
  pool.use_source(nullptr, state.range(4) ? ImageForm::kBytes : ImageForm::kFloats);
  uint64_t seed = 1;
  for (auto _ : state) {
    BatchLoader loader(set, order, batch, AugmentOptions{}, seed++, workers, depth, Normalization{},
                       pooled ? &pool : nullptr);
    for (Batch b; loader.next(b);) {
      benchmark::DoNotOptimize(b.images.data());
      benchmark::DoNotOptimize(b.pixels.data());
    }
  }
  state.counters["examples/s"] =
      benchmark::Counter(double(examples), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(LoaderEpoch)
    ->ArgNames({"workers", "window", "batch", "pool", "bytes"})
    ->Args({2, 4, 150, 0, 0})
    ->Args({2, 4, 150, 1, 0})
    ->Args({2, 4, 150, 1, 1})
    ->Args({2, 4, 50, 0, 0})
    ->Args({2, 4, 50, 1, 0})
    ->Args({2, 4, 50, 1, 1})
    ->Args({2, 1, 150, 1, 0})
    ->Args({2, 1, 50, 1, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The CUDA step's copy of a batch into its staging buffer (200 px, batch
// 150: 72 MB; pageable here, pinned there) on 1 thread against parallel_copy's
// split. Arg: threads.
void StagingCopy(benchmark::State& state) {
  const size_t bytes = size_t(150) * 3 * 200 * 200 * sizeof(float);
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 0);
  for (auto _ : state) {
    parallel_copy(dst.data(), src.data(), bytes, int(state.range(0)));
    benchmark::DoNotOptimize(dst.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(bytes));
}
BENCHMARK(StagingCopy)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace histocnn

BENCHMARK_MAIN();
