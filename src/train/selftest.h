// Self-verification on the user's hardware: the device under test against a
// trusted reference, layer by layer and over a few training steps, with every
// allocator, plus allocator invariants on the real device.
//
//   --device cuda: the CUDA step vs the CPU (oneDNN) step, cuDNN set deterministic
//   --device cpu:  the CPU step vs the naive reference network (nn/reference.h),
//                  so the same code runs, and is tested, on machines without a GPU
//
// Checks (each a row of the PASS/FAIL table, with the worst difference found):
//   forward          loss and class probabilities of a random batch
//   <param> grad     every parameter's gradient (one row per layer's weight and bias)
//   bf16 ...         cuda: the bf16 step's loss, probabilities and gradient directions
//   conv1.weight gradient, <route>   cuda: each way the step may compute it
//                    (cudnn, direct, pooled), forced, against the reference
//   train/<alloc>    parameters after `steps` Adam steps with that allocator
//   same weights     every allocator gives identical weights (bit for bit)
//   ..., batches in step memory   cuda: the same with the images in the step's
//                    page-locked input buffers (sent by DMA, as the loader's)
//   pool invariants  randomized allocate/free on the device through the pool
#pragma once

#include <string>
#include <vector>

#include "nn/elementwise.h"
#include "nn/spec.h"

namespace histocnn {

struct SelfTestOptions {
  std::string device = "cuda";
  ModelSpec spec = default_model_spec();
  int width = 64, height = 64, batch = 8;
  int steps = 3;
  std::vector<std::string> allocators = {"direct", "pool", "async", "plan"};
  int pool_operations = 20000;  // allocator stress on the device
  // --device cuda: also the bf16 step (--precision bf16) against the fp32
  // reference, where the GPU supports it (else a SKIP row says why; with
  // bf16_required, a FAIL row).
  bool bf16 = true, bf16_required = false;
  // --device cuda: the step's convolutions through cuDNN's graph API.
  bool cudnn_graph = false;
  // --device cuda: the step's maps channels last (NHWC).
  bool channels_last = false;
  // The loss's target, for the step under test and its reference alike.
  elementwise::LabelSmoothing label_smoothing;
};

// The seconds-long part run before `train --device cuda`.
SelfTestOptions quick_selftest_options(const ModelSpec& spec, int width, int height);

struct SelfTestRow {
  std::string check;
  bool passed = false;
  double worst = 0, tolerance = 0;  // worst relative difference and the bound it must meet
  std::string note;
  bool skipped = false;  // not run on this device (passed stays true; the note says why)
};

struct SelfTestReport {
  std::vector<SelfTestRow> rows;
  bool passed = true;
  std::string table() const;    // the PASS/FAIL table
  std::string summary() const;  // one line
};

// Throws histocnn::Error ("no CUDA device: ...") when the device is absent.
SelfTestReport run_selftest(const SelfTestOptions& options);

}  // namespace histocnn
