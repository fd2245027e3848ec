#include "nn/params.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace histocnn {

Parameters Parameters::zeros(const NetworkShape& shape) {
  Parameters p;
  p.layout = parameter_layout(shape);
  const auto& last = p.layout.back();
  p.values.assign(static_cast<size_t>(last.offset + (last.size + 15) / 16 * 16), 0.0f);
  return p;
}

Parameters Parameters::glorot(const NetworkShape& shape, uint64_t seed) {
  Parameters p = zeros(shape);
  Rng rng(seed);
  for (const auto& info : p.layout) {
    if (info.is_bias) continue;
    const double limit = std::sqrt(6.0 / (info.fan_in + info.fan_out));
    float* w = p.data(info);
    for (int64_t i = 0; i < info.size; ++i) w[i] = static_cast<float>(rng.uniform(-limit, limit));
  }
  return p;
}

const ParamInfo& Parameters::info(const std::string& name) const {
  for (const auto& p : layout)
    if (p.name == name) return p;
  fail("no parameter named '" + name + "' in this model");
}

}  // namespace histocnn
