// Adam (Kingma & Ba) over the flat parameter vector, in PyTorch's form:
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
// Defaults are Keras': lr 1e-3, b1 0.9, b2 0.999, eps 1e-7. weight_decay > 0
// gives AdamW (decoupled: w *= 1 - lr * wd before the step, on every
// parameter, as torch.optim.AdamW over model.parameters()). The per-element
// update is elementwise::adam (nn/elementwise.h), shared with the CUDA kernel.
#pragma once

#include <cstdint>

#include "nn/elementwise.h"

namespace histocnn {

struct AdamConfig {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-7f;
  float weight_decay = 0.0f;
};

// The bias-corrected constants of step t (t >= 1), computed in double.
elementwise::AdamStep adam_constants(const AdamConfig& config, int64_t t);

// One fused update of n parameters at step t (t >= 1), on host memory.
// Parallel over OpenMP threads.
void adam_update(const AdamConfig& config, int64_t t, int64_t n, float* weights, const float* grads,
                 float* m, float* v);

}  // namespace histocnn
