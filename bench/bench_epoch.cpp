// One training epoch of the paper's CNN on the CPU backend, over a grid of
// input sizes x batch sizes, beside the machine's practical ceiling: the rate
// of a 2048^3 single-precision matrix product (oneDNN's dnnl_sgemm) on the
// same threads, measured in the same run.
//
//   bench_epoch --sizes 32,64,128,180,200 --batches 10,20,50,100,150 --threads 2
//               --repeats 3 --json out.json
//
// An epoch is the paper's 1851 examples (941 benign + 910 malignant; crops
// of the study's synthetic tissue, or random pixels with --pixels random:
// study/bench_examples.h) fed
// through the real BatchLoader (augmentation and float conversion by the
// step's OpenMP team between steps, into buffers kept from epoch to epoch,
// as the trainer has them; --loader-workers for threads beside it) into
// TrainingStep::train. Reports the median of the repeats after one warm-up.
// Also measures the memory bandwidth the same threads reach (STREAM's triad),
// the other ceiling of a step whose activations do not fit in the caches.
// GFLOP/s counts every convolution as direct (2 x multiply-adds); the 3x3
// ones run on Winograd F(4x4, 3x3) where oneDNN has it (2.25x fewer), so
// with it the rate can pass the sgemm ceiling (--direct-conv: all direct).

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <utility>

#include "backends/backend.h"
#include "backends/cpu/adam_kernel.h"
#include "backends/cpu/dense_kernels.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/loader.h"
#include "study/bench_examples.h"
#include "study/machine_ceilings.h"

using namespace histocnn;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::vector<int> parse_list(const std::string& text) {
  std::vector<int> values;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) values.push_back(std::stoi(item));
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"histocnn CPU epoch benchmark"};
  std::string sizes = "32,64,128,180,200", batches = "10,20,50,100,150", json_path;
  int threads = 0, repeats = 3, benign = 941, malignant = 910, loader_workers = -1;
  std::string precision = "fp32", pixels = "tissue";
  double slice_kb = -1;  // -1: the step's default budget
  float hed_jitter = 0;
  bool profile_layers = false, onednn_pool = false, onednn_conv1 = false, direct_conv = false;
  bool portable_adam = false, per_pixel_hed = false, sgemm_dense = false, onednn_wgrad = false,
       onednn_dgrad = false, onednn_forward = false;
  app.add_option("--sizes", sizes, "input sizes")->capture_default_str();
  app.add_option("--batches", batches, "batch sizes")->capture_default_str();
  app.add_option("--threads", threads, "cores (0 = all)")->capture_default_str();
  app.add_option("--repeats", repeats, "timed epochs per point")->capture_default_str();
  app.add_option("--benign", benign, "benign examples")->capture_default_str();
  app.add_option("--malignant", malignant, "malignant examples")->capture_default_str();
  app.add_option("--pixels", pixels,
                 "tissue (the study's synthetic crops: our pooled gradients' work follows the "
                 "content) | random (as records before 2026-12-06)")
      ->check(CLI::IsMember({"tissue", "random"}))
      ->capture_default_str();
  app.add_option("--precision", precision, "fp32 | bf16")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  app.add_option("--slice-kb", slice_kb,
                 "micro-batch a conv block whose output exceeds this many KiB (0 = never; "
                 "default: the step's)");
  app.add_flag("--profile-layers", profile_layers,
               "time every operation; print ms per step by layer and direction");
  app.add_flag("--onednn-pool", onednn_pool,
               "max pooling by oneDNN's primitives instead of histocnn's kernels (A/B)");
  app.add_flag("--onednn-conv1", onednn_conv1,
               "conv1 by oneDNN's convolution instead of histocnn's fused conv+ReLU+pool (A/B)");
  app.add_flag("--direct-conv", direct_conv,
               "every convolution by oneDNN's direct algorithm, no Winograd (A/B)");
  app.add_flag("--onednn-wgrad", onednn_wgrad,
               "the later conv blocks' weight gradients by oneDNN instead of histocnn's kernel "
               "from the pooled gradient (A/B)");
  app.add_flag("--onednn-dgrad", onednn_dgrad,
               "the later conv blocks' data gradients by oneDNN (after a pool backward) instead "
               "of histocnn's kernel from the pooled gradient (A/B)");
  app.add_flag("--onednn-forward", onednn_forward,
               "the later conv blocks' forward by oneDNN's convolution (then our pool) instead "
               "of histocnn's Winograd conv+ReLU+pool kernel (A/B)");
  app.add_flag("--portable-adam", portable_adam,
               "Adam by the portable scalar loop instead of AVX-512 or AVX2 (A/B)");
  app.add_option("--loader-workers", loader_workers,
                 "loader threads beside the compute threads (default: 0, the OpenMP team "
                 "prepares each batch, as the trainer and histocnn bench on cpu)")
      ->check(CLI::Range(0, 64));
  app.add_option("--hed-jitter", hed_jitter,
                 "augment as --preset accurate does (flips, rotations, HED jitter of this "
                 "sigma): a loader ~15x costlier per pixel than plain conversion")
      ->check(CLI::Range(0.0, 1.0));
  app.add_flag("--sgemm-dense", sgemm_dense,
               "dense layers on sgemm at every batch, not the skinny kernels at <= 12 rows (A/B)");
  app.add_flag("--per-pixel-hed", per_pixel_hed,
               "HED jitter with an exponential per value instead of HedTables (A/B)");
  app.add_option("--json", json_path, "write results here");
  CLI11_PARSE(app, argc, argv);
  // CLI::Range compares, so NaN passes it; refuse what is not a number here.
  for (const auto& [name, value] :
       {std::pair{"--hed-jitter", double(hed_jitter)}, std::pair{"--slice-kb", slice_kb}})
    if (!std::isfinite(value)) {
      std::fprintf(stderr, "bench_epoch: %s: not a finite number\n", name);
      return 2;
    }
  threads = bound_cores(threads);
  if (loader_workers < 0) loader_workers = loader_workers_for(true, threads);
  cpu::cap_adam(portable_adam ? "portable" : "avx512");
  set_per_pixel_hed(per_pixel_hed);
  cpu::cap_dense(sgemm_dense ? "portable" : "avx512");
  AugmentOptions augment;
  if (hed_jitter > 0) augment.flips = augment.rotations = true, augment.hed_jitter = hed_jitter;

  const std::vector<double> sgemm = sgemm_gflops();
  const double ceiling = *std::max_element(sgemm.begin(), sgemm.end());
  std::printf("sgemm 2048^3 on %d threads: best %.1f GFLOP/s (median %.1f of %zu runs)\n", threads,
              ceiling, median(sgemm), sgemm.size());
  const double triad = triad_gbs(threads);
  std::printf("memory triad on %d threads: %.1f GB/s\n", threads, triad);
  const cpu::DenseVersions dense = cpu::dense_versions(1, 16);
  nlohmann::json results = {
      {"engine", "histocnn"},
      {"precision", precision},
      {"max_pool", onednn_pool ? "oneDNN" : "histocnn"},
      {"conv1", onednn_pool || onednn_conv1 ? "oneDNN" : "histocnn"},
      {"winograd", !direct_conv},
      {"later_weight_gradients", onednn_wgrad ? "oneDNN" : "histocnn from the pooled gradient"},
      {"later_data_gradients", onednn_dgrad ? "oneDNN" : "histocnn from the pooled gradient"},
      {"later_forward", onednn_forward ? "oneDNN" : "histocnn Winograd conv+ReLU+pool"},
      {"adam", cpu::adam_isa()},
      {"dense", sgemm_dense ? "sgemm"
                            : "skinny kernels at <= 12 rows (forward " + dense.forward +
                                  ", backward " + dense.backward + ")"},
      {"threads", threads},
      {"loader_workers", loader_workers},
      {"hed_jitter", hed_jitter},
      {"hed", per_pixel_hed ? "per pixel" : "tables"},
      {"triad_gbs", triad},
      {"sgemm_gflops", ceiling},
      {"sgemm_gflops_all", sgemm},
      {"examples", benign + malignant},
      {"pixels", pixels},
      {"points", nlohmann::json::array()}};
  std::printf("%5s %6s %10s %10s %10s %8s\n", "size", "batch", "epoch_s", "img/s", "GFLOP/s",
              "%sgemm");
  for (int size : parse_list(sizes)) {
    const ExampleSet set = bench_examples(pixels, size, benign, malignant);
    Rng rng(size);
    std::vector<int> order(set.examples.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int batch : parse_list(batches)) {
      const ModelSpec spec = default_model_spec();
      const NetworkShape shape = infer_shapes(spec, batch, size, size);
      StepOptions options;
      options.precision = precision;
      if (slice_kb >= 0) options.cpu_slice_bytes = size_t(slice_kb * 1024);
      options.profile_layers = profile_layers;
      options.cpu_onednn_pooling = onednn_pool;
      options.cpu_onednn_conv1 = onednn_conv1;
      options.cpu_winograd = !direct_conv;
      options.cpu_pooled_weight_gradients = !onednn_wgrad;
      options.cpu_pooled_data_gradients = !onednn_dgrad;
      options.cpu_own_winograd_forward = !onednn_forward;
      auto step = make_backend(cpu_device())->compile(spec, shape, options);
      step->set_parameters(Parameters::glorot(shape, 1));
      // Batch buffers kept from epoch to epoch, as the trainer and `histocnn
      // bench` keep them (until 2026-12-05 each epoch here made its own; at
      // 200 px on 2 cores that measured the same, 0.99x at batches 10 and 50).
      BatchPool buffers;
      buffers.use_source(step->input_buffers());
      auto epoch = [&](int max_batches) {
        BatchLoader loader(set, order, batch, augment, 1, loader_workers, 4, Normalization{},
                           &buffers);
        int done = 0;
        for (Batch b; done < max_batches && loader.next(b); ++done)
          step->train(b.images.data(), b.labels.data(), b.count);
        return loader.wait_seconds();
      };
      epoch(3);  // warm-up: primitive creation, page faults
      std::vector<double> times, waits;
      for (int r = 0; r < repeats; ++r) {
        const auto t = Clock::now();
        waits.push_back(epoch(1 << 30));
        times.push_back(seconds_since(t));
      }
      const double s = median(times);
      const NetworkShape per_example = infer_shapes(spec, 1, size, size);
      const double flops = per_example.training_flops() * double(set.examples.size());
      const double gflops = flops / s / 1e9;
      std::printf("%5d %6d %10.3f %10.1f %10.1f %7.1f%%\n", size, batch, s, set.examples.size() / s,
                  gflops, 100 * gflops / ceiling);
      std::fflush(stdout);
      nlohmann::json layers = nlohmann::json::object();
      if (profile_layers) {
        const StepProfile profile = step->profile();
        for (const auto& [layer, seconds] : profile.layers) {
          layers[layer] = 1e3 * seconds / double(profile.steps);
          std::printf("    %-16s %8.2f ms per step\n", layer.c_str(),
                      1e3 * seconds / double(profile.steps));
        }
      }
      results["points"].push_back({{"size", size},
                                   {"layer_ms_per_step", layers},
                                   {"batch", batch},
                                   {"epoch_seconds", s},
                                   {"epoch_seconds_all", times},
                                   {"data_wait_seconds", median(waits)},
                                   {"images_per_second", set.examples.size() / s},
                                   {"gflops", gflops},
                                   {"fraction_of_sgemm", gflops / ceiling},
                                   {"activation_bytes", step->memory().activation_bytes},
                                   {"backend", step->details()}});
    }
  }
  if (!json_path.empty()) std::ofstream(json_path) << results.dump(2) << "\n";
  return 0;
}
