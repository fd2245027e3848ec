// The model's parameters: one flat float vector (see parameter_layout) in
// PyTorch layouts — OIHW for convolution weights, [out, in] for dense weights,
// the first dense layer reading the last pooled map flattened as C*H*W.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/spec.h"

namespace histocnn {

struct Parameters {
  std::vector<ParamInfo> layout;
  std::vector<float> values;

  static Parameters zeros(const NetworkShape& shape);
  // Glorot-uniform weights (Keras' default), zero biases; seeded.
  static Parameters glorot(const NetworkShape& shape, uint64_t seed);

  const ParamInfo& info(const std::string& name) const;
  float* data(const ParamInfo& p) { return values.data() + p.offset; }
  const float* data(const ParamInfo& p) const { return values.data() + p.offset; }
};

// What a network keeps besides its trained parameters: the batch-norm running
// statistics (PyTorch's buffers), updated by training steps and used by
// inference. Empty for a network without batch norm.
struct Buffers {
  std::vector<ParamInfo> layout;  // buffer_layout(shape)
  std::vector<float> values;
  int64_t batches_tracked = 0;  // bnK.num_batches_tracked: training steps taken (every layer)
  static Buffers initial(const NetworkShape& shape);  // running mean 0, variance 1
  bool empty() const { return layout.empty(); }
  const ParamInfo& info(const std::string& name) const;
  float* data(const ParamInfo& p) { return values.data() + p.offset; }
  const float* data(const ParamInfo& p) const { return values.data() + p.offset; }
  // The running statistics of conv layer `conv` (0-based); null when it has no BN.
  float* running_mean(int conv);
  float* running_var(int conv);
  // PyTorch's update from one training batch: running = (1 - m) running + m batch,
  // with the unbiased batch variance (count = values per channel).
  void update(int conv, const float* batch_mean, const float* batch_var, int channels,
              int64_t count);
};

}  // namespace histocnn
