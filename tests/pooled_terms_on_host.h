// What the kernels from the pooled gradient read, made on the host as the
// step makes it: a conv's raw output pooled with its bias and ReLU after the
// max (pooled map and argmax), a random pooled gradient, and the full
// conv-output gradient pool_relu_backward scatters from them (what cuDNN's
// backward calls read, and the reference layers). Every value exact in bf16,
// so a bf16 instantiation can be held to the fp32 one's bits. Shared by the
// pooled weight- and data-gradient tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/cuda/cuda_schedule.h"
#include "backends/cuda/pool_kernels.h"
#include "core/bf16.h"
#include "cuda_kernels_on_host.h"
#include "test_util.h"

namespace histocnn::cuda::on_host {

inline std::vector<float> exact_bf16(std::vector<float> v) {
  for (float& e : v) e = round_to_bf16(e);
  return v;
}
inline std::vector<Bf16> to_bf16_vector(const std::vector<float>& v) {
  std::vector<Bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_bf16(v[i]);
  return out;
}

struct PooledTerms {
  Dims4 y{};
  PoolMaps maps{};
  MapLayout pooled_layout{};  // channels first
  std::vector<float> pooled, d_pooled, d_act;
  std::vector<uint8_t> argmax;
  size_t count() const { return pooled.size(); }
  // Windows whose argmax byte says they pass no gradient (kArgmaxNotPositive):
  // a case without any would not test that the kernels honour the flag.
  size_t flagged_windows() const {
    return size_t(
        std::count_if(argmax.begin(), argmax.end(), [](uint8_t a) { return !argmax_passes(a); }));
  }
};

// Seeds seed (the conv output), seed + 1 (its bias), seed + 2 (the pooled
// gradient); every `zero_every`-th pooled gradient is zero (0: none).
inline PooledTerms make_pooled_terms(const Dims4& x, int out_c, int kernel, int pad, int pool,
                                     uint64_t seed, int zero_every = 0) {
  PooledTerms t;
  t.y = conv_output_dims(x, out_c, kernel, pad);
  t.maps = PoolMaps{t.y.n, t.y.layout(false), false, pool};
  t.pooled_layout = t.maps.pooled();
  const size_t count = size_t(t.y.n) * t.pooled_layout.c * t.pooled_layout.h * t.pooled_layout.w;
  const auto act = testing::random_vector(size_t(t.y.count()), seed);
  const auto bias = testing::random_vector(size_t(t.y.c), seed + 1, -0.3f, 0.3f);
  t.d_pooled = exact_bf16(testing::random_vector(count, seed + 2));
  if (zero_every > 0)
    for (size_t i = 0; i < count; i += size_t(zero_every)) t.d_pooled[i] = 0.0f;
  t.pooled.resize(count);
  t.argmax.resize(count);
  max_pool_forward(act.data(), bias.data(), t.pooled.data(), t.argmax.data(), t.maps);
  t.d_act.resize(size_t(t.y.count()));
  pool_relu_backward(nullptr, t.d_pooled.data(), t.argmax.data(), t.d_act.data(),
                     static_cast<float*>(nullptr), t.maps);
  return t;
}

// What the kernels read of the pooled terms (the pooled gradient and
// argmax, not the pooled map) in another layout (`to`: the same channels and
// size).
struct PooledTermsIn {
  std::vector<float> d_pooled;
  std::vector<uint8_t> argmax;
};
inline PooledTermsIn relaid_pooled_terms(const PooledTerms& t, const MapLayout& to) {
  PooledTermsIn out{std::vector<float>(t.count()), std::vector<uint8_t>(t.count())};
  for (int64_t i = 0; i < int64_t(t.count()); ++i) {
    const MapCoords c = t.pooled_layout.coords(i);
    const size_t j = size_t(to.at(c.n, c.c, c.y, c.x));
    out.d_pooled[j] = t.d_pooled[size_t(i)];
    out.argmax[j] = t.argmax[size_t(i)];
  }
  return out;
}

}  // namespace histocnn::cuda::on_host
