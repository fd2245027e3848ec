// The side-by-side benchmark's histocnn engine: training epochs of the
// paper's CNN (or another model spec) over a grid of input sizes x batch
// sizes, all in one process
// (so a 5-minute GPU budget is spent training, not starting processes), on
// the study's synthetic tissue crops (study/bench_examples.h: our pooled
// gradients' work follows the content; --pixels random for older records'
// conditions), with a fresh memory engine per point so its high-water mark
// is that point's.
//
// Per point: every epoch's seconds (the loader, the step and, on CUDA, the
// final synchronisation), their median after the warm-up epochs, the measured
// peak of the bytes the resource chain handed out (PyTorch's
// max_memory_allocated is the same quantity) beside the plan's, the per-step
// phase times and, with profile_layers, each layer's.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/spec.h"

namespace histocnn {

struct EpochBenchOptions {
  std::string device = "cuda";
  ModelSpec spec = default_model_spec();
  std::string model;  // the file `spec` came from ("" = the paper's network)
  std::vector<int> sizes = {32, 64, 128, 200};
  std::vector<int> batches = {10, 50, 150};
  std::string allocator = "plan";  // plan | pool | direct | async
  bool cuda_graphs = false;
  bool cudnn_graph = false;    // convolutions through cuDNN's graph API
  bool channels_last = false;  // cuda: the conv blocks' maps NHWC
  std::string precision = "fp32";
  int warmup = 1, epochs = 2;         // epochs per point: warm-up, then timed
  int benign = 941, malignant = 910;  // the paper's crop counts
  std::string pixels = "tissue";      // tissue | random (study/bench_examples.h)
  int threads = 0;                    // 0 = all cores
  bool profile_layers = false;
  bool onednn_pool = false;          // cpu: oneDNN's max pooling instead of ours (A/B)
  bool onednn_conv1 = false;         // cpu: conv1 by oneDNN instead of our fused kernels (A/B)
  bool direct_conv = false;          // cpu: no Winograd convolutions (A/B)
  bool direct_conv_weights = false;  // cpu: Winograd but for the weight gradients (A/B)
  bool onednn_wgrad = false;    // cpu: oneDNN's weight gradients, not ours from the pooled (A/B)
  bool onednn_dgrad = false;    // cpu: oneDNN's data gradients, not ours from the pooled (A/B)
  bool onednn_forward = false;  // cpu: oneDNN's later forward convolutions, not our Winograd (A/B)
  int slice_kb = -1;            // cpu: micro-batching budget in KiB (-1: the step's default)
  int loader_workers = -1;      // loader threads beside the compute threads (-1: as training)
  bool staged_batches = false;  // cuda: batches in ordinary memory, staged by a copy (A/B)
  bool float_batches = false;   // cuda: images sent as floats, not as bytes + tables (A/B)
  // cuda: conv1 without its plan-changing routes — cuDNN's forward and our
  // pool kernel, our direct weight-gradient kernel — instead of the routes
  // timed fastest when the step is built (A/B).
  bool plain_conv1 = false;
  // cuda: the later conv blocks' weight gradients by cuDNN's algorithm
  // instead of the route timed fastest (our kernel from the pooled gradient).
  bool cudnn_later_wgrad = false;
  bool cudnn_later_dgrad = false;  // --cudnn-later-dgrad
  bool ceilings = false;  // cpu: also measure sgemm and memory bandwidth (machine_ceilings.h)
};

// {"engine", "device", "precision", "allocator", "cuda_graphs", "points": [...]}
// (+ "ceilings" when asked); a point that fails (out of memory, say) is
// recorded with its "error". Each point's "epoch_gflop" is the epoch's
// arithmetic, every convolution counted as direct (2 x multiply-adds).
nlohmann::json run_epoch_bench(const EpochBenchOptions& options);

}  // namespace histocnn
