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

}  // namespace histocnn
