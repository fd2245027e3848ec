#include "nn/params.h"

#include <algorithm>
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
    if (info.starts_at_one) std::fill(p.data(info), p.data(info) + info.size, 1.0f);
    if (info.is_bias || info.starts_at_one) continue;
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

Buffers Buffers::initial(const NetworkShape& shape) {
  Buffers b;
  b.layout = buffer_layout(shape);
  if (b.layout.empty()) return b;
  const auto& last = b.layout.back();
  b.values.assign(static_cast<size_t>(last.offset + (last.size + 15) / 16 * 16), 0.0f);
  for (const auto& info : b.layout)
    if (info.starts_at_one) std::fill(b.data(info), b.data(info) + info.size, 1.0f);
  return b;
}

const ParamInfo& Buffers::info(const std::string& name) const {
  for (const auto& p : layout)
    if (p.name == name) return p;
  fail("no buffer named '" + name + "' in this model");
}

float* Buffers::running_mean(int conv) {
  const std::string name = "bn" + std::to_string(conv + 1) + ".running_mean";
  for (const auto& p : layout)
    if (p.name == name) return data(p);
  return nullptr;
}

float* Buffers::running_var(int conv) {
  const std::string name = "bn" + std::to_string(conv + 1) + ".running_var";
  for (const auto& p : layout)
    if (p.name == name) return data(p);
  return nullptr;
}

void Buffers::update(int conv, const float* batch_mean, const float* batch_var, int channels,
                     int64_t count) {
  float* mean = running_mean(conv);
  float* var = running_var(conv);
  require(mean && var, "conv layer " + std::to_string(conv + 1) + " has no batch norm");
  const double unbias = count > 1 ? double(count) / double(count - 1) : 1.0;
  const float m = kBatchNormMomentum;
  for (int c = 0; c < channels; ++c) {
    mean[c] = (1 - m) * mean[c] + m * batch_mean[c];
    var[c] = (1 - m) * var[c] + m * float(batch_var[c] * unbias);
  }
}

}  // namespace histocnn
