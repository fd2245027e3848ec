// The CPU step's own max-pool kernels (backends/cpu/pool_kernels.h) against
// the reference layers, in every layout oneDNN hands them (nchw, nhwc,
// nChw8c, nChw16c with padded channels), in fp32 and bf16, on maps whose
// last rows and columns do not fill a window, through the AVX-512, the AVX2
// and the portable code (each where this CPU has it). Tensors travel between
// NCHW and the layout under test by oneDNN reorders, so the kernels' indexing
// is checked against oneDNN's.
#include <gtest/gtest.h>

#include <cmath>
#include <dnnl.hpp>

#include "backends/cpu/pool_kernels.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/reference.h"
#include "onednn_layouts.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

struct PoolCase {
  std::string name;
  tag layout;
  dt type;
  int n, c, h, w, p;
};
void PrintTo(const PoolCase& c, std::ostream* os) {
  *os << c.name;
}

class CpuPoolKernels : public ::testing::TestWithParam<PoolCase>, protected testing::OneDnnLayouts {
 protected:
  const dnnl::engine& engine_ = engine();
  void TearDown() override { cap_pool_kernels("avx512"); }
  // Our forward and backward kernels on tensors of `type`.
  static void run(dt type, const Mem& x, const LaneLayout& in, const Mem& y, const Mem& dy,
                  uint8_t* argmax, const LaneLayout& out, const Mem& dx, int p, bool relu) {
    max_pool_forward(type, x.get_data_handle(), in, y.get_data_handle(), argmax, out, p, relu);
    max_pool_relu_backward(type, dy.get_data_handle(), argmax, out, dx.get_data_handle(), in, p);
  }
};

// Every argmax byte: the position of its window's first maximum in `x`
// (plain NCHW), flagged exactly where the stored pooled value is not > 0.
void expect_argmax(const std::vector<uint8_t>& argmax, const LaneLayout& out,
                   const std::vector<float>& x, const std::vector<float>& y, int h, int w, int p,
                   const std::string& where) {
  int flagged = 0;
  const int channels = int(x.size() / (size_t(out.n) * h * w));  // padding lanes left out
  for (int n = 0; n < out.n; ++n)
    for (int c = 0; c < channels; ++c)
      for (int oy = 0; oy < out.h; ++oy)
        for (int ox = 0; ox < out.w; ++ox) {
          const float* plane = x.data() + (int64_t(n) * channels + c) * h * w;
          int best = 0;
          for (int k = 1; k < p * p; ++k)
            if (plane[(oy * p + k / p) * w + ox * p + k % p] >
                plane[(oy * p + best / p) * w + ox * p + best % p])
              best = k;
          const int64_t at = n * out.image + (c / out.lanes) * out.block + oy * out.row +
                             ox * out.column + c % out.lanes;
          const float pooled = y[((size_t(n) * channels + c) * out.h + oy) * out.w + ox];
          const uint8_t got = argmax[size_t(at)];
          const std::string element = where + " n" + std::to_string(n) + " c" + std::to_string(c) +
                                      " (" + std::to_string(oy) + ", " + std::to_string(ox) + ")";
          ASSERT_EQ(argmax_passes(got), pooled > 0) << element;
          ASSERT_LT(argmax_position(got), p * p) << element;
          // A window that passes a gradient must name its first maximum (one
          // that passes none may name another of its equal zeros: the ReLU
          // is taken after the max).
          if (pooled > 0) {
            ASSERT_EQ(argmax_position(got), best) << element;
          }
          flagged += pooled > 0 ? 0 : 1;
        }
  EXPECT_GT(flagged, 0) << where << ": no window was flagged, so the flag went untested";
}

std::vector<float> random_values(size_t count, uint64_t seed, bool with_ties) {
  Rng rng(seed);
  std::vector<float> v(count);
  for (float& x : v) {
    // bf16 keeps these exactly (8 significant bits), so both types compare exactly.
    x = float(int(rng.next() % 256) - 96) / 32.0f;
    if (with_ties && rng.next() % 3 == 0) x = 1.0f;  // equal maxima inside windows
  }
  return v;
}

TEST_P(CpuPoolKernels, ForwardAndBackwardEqualTheReferenceLayers) {
  const PoolCase& k = GetParam();
  const int oh = k.h / k.p, ow = k.w / k.p;
  const auto plain = Mem::desc({k.n, k.c, k.h, k.w}, dt::f32, tag::nchw);
  const auto plain_out = Mem::desc({k.n, k.c, oh, ow}, dt::f32, tag::nchw);
  const auto md = Mem::desc({k.n, k.c, k.h, k.w}, k.type, k.layout);
  const auto md_out = Mem::desc({k.n, k.c, oh, ow}, k.type, k.layout);
  const auto in = lane_layout(md), out = lane_layout(md_out);
  ASSERT_TRUE(in && out) << k.name;
  ASSERT_TRUE(poolable(*in, *out, k.p));

  std::vector<float> x = random_values(plain.get_size() / 4, 7, true);
  // Channel 1 below zero throughout: windows whose maximum is not positive
  // in every case, however large the window (their argmax bytes flagged).
  for (int n = 0; n < k.n; ++n)
    for (int64_t i = 0; i < int64_t(k.h) * k.w; ++i) {
      float& v = x[size_t((int64_t(n) * k.c + 1) * k.h * k.w + i)];
      v = -std::abs(v) - 1.0f / 32;  // still k / 32: bf16 keeps it exactly
    }
  const std::vector<float> dy = random_values(plain_out.get_size() / 4, 8, false);
  for (bool relu : {false, true}) {
    // With `relu` the kernel applies the ReLU that precedes the pool; the
    // reference applies it to the map first.
    std::vector<float> relu_x(x.size());
    reference::relu_forward(x.data(), relu_x.data(), int64_t(x.size()));
    const std::vector<float>& pooled_input = relu ? relu_x : x;
    std::vector<float> want_y(dy.size()), want_dx(x.size()), relu_dy(dy.size());
    reference::maxpool_forward(pooled_input.data(), want_y.data(), k.n, k.c, k.h, k.w, k.p);
    // The ReLU's backward on the pooled map, then the scatter.
    reference::relu_backward(want_y.data(), dy.data(), relu_dy.data(), int64_t(dy.size()));
    reference::maxpool_backward(pooled_input.data(), relu_dy.data(), want_dx.data(), k.n, k.c, k.h,
                                k.w, k.p);
    for (const char* isa : {"avx512", "avx2", "portable"}) {
      cap_pool_kernels(isa);
      const std::string where =
          k.name + (relu ? " relu" : "") + " capped at " + isa + ": " + pool_kernels_isa(in->lanes);
      Mem x_l = to_layout(x, plain, md), dy_l = to_layout(dy, plain_out, md_out);
      Mem y_l(md_out, engine_), dx_l(md, engine_);
      std::memset(dx_l.get_data_handle(), 0x7f, md.get_size());  // every element must be written
      std::vector<uint8_t> argmax(md_out.get_size());
      run(k.type, x_l, *in, y_l, dy_l, argmax.data(), *out, dx_l, k.p, relu);
      EXPECT_EQ(to_nchw(y_l, plain_out), want_y) << where;
      EXPECT_EQ(to_nchw(dx_l, plain), want_dx) << where;
      expect_argmax(argmax, *out, pooled_input, want_y, k.h, k.w, k.p, where);
    }
  }
}

std::vector<PoolCase> pool_cases() {
  std::vector<PoolCase> cases;
  for (dt type : {dt::f32, dt::bf16}) {
    const std::string t = type == dt::f32 ? "F32" : "Bf16";
    cases.push_back({"Nchw" + t, tag::nchw, type, 2, 3, 9, 11, 2});
    cases.push_back({"Nhwc32" + t, tag::nhwc, type, 2, 32, 9, 11, 2});
    cases.push_back({"Nhwc20" + t, tag::nhwc, type, 2, 20, 8, 7, 3});   // lanes not in sixteens
    cases.push_back({"Nhwc24" + t, tag::nhwc, type, 2, 24, 9, 10, 2});  // in eights: AVX2 only
    cases.push_back({"NChw8c" + t, tag::nChw8c, type, 3, 16, 10, 10, 2});
    cases.push_back({"NChw16c" + t, tag::nChw16c, type, 2, 32, 13, 9, 2});
    cases.push_back({"NChw16cPadded" + t, tag::nChw16c, type, 2, 20, 7, 7, 3});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Layouts, CpuPoolKernels, ::testing::ValuesIn(pool_cases()),
                         [](const auto& info) { return info.param.name; });

// Each version runs where the CPU has it and the lanes suit it, and a cap
// holds the kernels below it.
TEST(CpuPoolIsa, TheBestVersionTheCpuAndTheLanesAllow) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const std::string eights = avx2 ? "avx2" : "portable";
  EXPECT_EQ(pool_kernels_isa(16), avx512 ? "avx512" : eights);
  EXPECT_EQ(pool_kernels_isa(8), eights);
  EXPECT_EQ(pool_kernels_isa(24), eights);
  EXPECT_EQ(pool_kernels_isa(20), "portable");
  cap_pool_kernels("avx2");
  EXPECT_EQ(pool_kernels_isa(16), eights);
  cap_pool_kernels("portable");
  EXPECT_EQ(pool_kernels_isa(16), "portable");
  EXPECT_EQ(pool_kernels_isa(8), "portable");
  cap_pool_kernels("avx512");
  EXPECT_THROW(cap_pool_kernels("sse2"), Error);
}

TEST(CpuPoolLayouts, LayoutsTheKernelsCannotReadAreRefused) {
  // Images blocked together, and a type that is not an activation's.
  EXPECT_FALSE(lane_layout(Mem::desc({32, 32, 8, 8}, dt::f32, tag::NChw16n16c)));
  EXPECT_FALSE(lane_layout(Mem::desc({2, 32, 8, 8}, dt::u8, tag::nhwc)));
  EXPECT_FALSE(lane_layout(Mem::desc({2, 32, 8}, dt::f32, tag::ncw)));
  const auto in = lane_layout(Mem::desc({2, 32, 8, 8}, dt::f32, tag::nChw16c));
  const auto out = lane_layout(Mem::desc({2, 32, 4, 4}, dt::f32, tag::nhwc));
  ASSERT_TRUE(in && out);
  EXPECT_EQ(in->lanes, 16);
  EXPECT_EQ(in->blocks, 2);
  EXPECT_EQ(out->lanes, 32);
  EXPECT_FALSE(poolable(*in, *out, 2));  // different lanes
  EXPECT_TRUE(poolable(*in, *lane_layout(Mem::desc({2, 32, 4, 4}, dt::f32, tag::nChw16c)), 2));
  EXPECT_FALSE(poolable(*in, *lane_layout(Mem::desc({2, 32, 3, 4}, dt::f32, tag::nChw16c)), 2));
}

}  // namespace
}  // namespace histocnn::cpu
