// Shared by the tests of the CPU kernels that take a convolution's gradients
// from the pooled gradient (test_cpu_pooled_wgrad.cpp,
// test_cpu_pooled_dgrad.cpp): a case (layout, type, shape), values bf16
// holds exactly, and the maps both start from, made by our pool kernels in
// the case's layout: the conv output after its bias and ReLU, pooled with
// its argmax bytes, a gradient for the pooled map, and the conv output's
// gradient it scatters to (plain NCHW, for the reference convolution).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <dnnl.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "backends/cpu/pool_kernels.h"
#include "core/bf16.h"
#include "core/rng.h"
#include "onednn_layouts.h"

namespace histocnn::cpu::pooled_cases {

struct KernelCase {
  std::string name;
  dnnl::memory::format_tag layout;
  dnnl::memory::data_type type;
  int n, in_c, out_c, h, w, kernel, pad, pool;
};
inline void PrintTo(const KernelCase& c, std::ostream* os) {
  *os << c.name;
}

// Values bf16 holds exactly, so both types see the same inputs.
inline std::vector<float> exact_values(size_t count, uint64_t seed, float lo, float hi) {
  Rng rng(seed);
  std::vector<float> v(count);
  for (float& x : v) x = round_to_bf16(lo + (hi - lo) * float(rng.next() % 4096) / 4096.0f);
  return v;
}

// Each element within `tolerance`, relative where |want| exceeds 1.
inline void expect_near(const std::vector<float>& got, const std::vector<float>& want,
                        double tolerance, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tolerance * std::max(1.0f, std::abs(want[i])))
        << what << " [" << i << "]";
}

struct Maps {
  // Plain NCHW fp32 and the case's layout, of the conv's input (x), output
  // (y) and the pooled map (p).
  dnnl::memory::desc plain_x, plain_y, plain_p, md_x, md_y, md_p;
  LaneLayout in, act, out;
  dnnl::memory pooled, d_pooled;  // in md_p
  std::vector<uint8_t> argmax;    // one byte per element of md_p
  std::vector<float> d_act;       // the scattered gradient, plain NCHW
};

// The maps of case k from values seeded by `seed` (y) and seed + 1 (the
// pooled gradient); nothing when a layout is not one our kernels take.
inline std::optional<Maps> pooled_maps(const KernelCase& k, testing::OneDnnLayouts& layouts,
                                       uint64_t seed) {
  using Mem = dnnl::memory;
  using dt = Mem::data_type;
  using tag = Mem::format_tag;
  const int ch = k.h + 2 * k.pad - k.kernel + 1, cw = k.w + 2 * k.pad - k.kernel + 1;
  const int ph = ch / k.pool, pw = cw / k.pool;
  Maps m;
  m.plain_x = Mem::desc({k.n, k.in_c, k.h, k.w}, dt::f32, tag::nchw);
  m.plain_y = Mem::desc({k.n, k.out_c, ch, cw}, dt::f32, tag::nchw);
  m.plain_p = Mem::desc({k.n, k.out_c, ph, pw}, dt::f32, tag::nchw);
  m.md_x = Mem::desc({k.n, k.in_c, k.h, k.w}, k.type, k.layout);
  m.md_y = Mem::desc({k.n, k.out_c, ch, cw}, k.type, k.layout);
  m.md_p = Mem::desc({k.n, k.out_c, ph, pw}, k.type, k.layout);
  const auto in = lane_layout(m.md_x), act = lane_layout(m.md_y), out = lane_layout(m.md_p);
  if (!in || !act || !out) return std::nullopt;
  m.in = *in, m.act = *act, m.out = *out;
  auto y = exact_values(m.plain_y.get_size() / 4, seed, -1, 1);
  for (float& v : y) v = std::max(v, 0.0f);  // about half zeros
  const auto d_pooled = exact_values(m.plain_p.get_size() / 4, seed + 1, -1, 1);
  const Mem y_l = layouts.to_layout(y, m.plain_y, m.md_y);
  m.d_pooled = layouts.to_layout(d_pooled, m.plain_p, m.md_p);
  m.pooled = Mem(m.md_p, layouts.engine());
  Mem d_act_l(m.md_y, layouts.engine());
  m.argmax.resize(m.md_p.get_size());
  max_pool_forward(k.type, y_l.get_data_handle(), m.act, m.pooled.get_data_handle(),
                   m.argmax.data(), m.out, k.pool);
  max_pool_relu_backward(k.type, m.d_pooled.get_data_handle(), m.argmax.data(), m.out,
                         d_act_l.get_data_handle(), m.act, k.pool);
  m.d_act = layouts.to_nchw(d_act_l, m.plain_y);
  return m;
}

}  // namespace histocnn::cpu::pooled_cases
