// The fused first-block kernels (backends/cpu/conv_pool_kernels.h) against a
// double-precision reference written here: convolution + bias + ReLU + max
// pool forward, and the weight and bias gradients through the pool's argmax.
// Geometries with leftover rows and columns, kernels 1-5, pools 2-4, 1-4
// input channels, 8-48 output channels (one, two and three groups at 2x2,
// whose forward tiles take two groups at once); pooled maps in nChw16c,
// nChw8c and nhwc, fp32 and bf16. Each case runs the AVX-512 version (16
// channels a group) and the AVX2 one (8), each capped in turn, where the
// machine runs it; the two must give the same bits.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <tuple>

#include "backends/cpu/conv_pool_kernels.h"
#include "backends/cpu/kernel_isa.h"
#include "core/rng.h"
#include "kernel_cap.h"
#include "test_util.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

struct FusedCase {
  std::string name;
  ConvPoolGeometry g;
  tag layout;
  dt type;
};
void PrintTo(const FusedCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<float> uniform(size_t count, uint64_t seed, float scale) {
  Rng rng(seed);
  std::vector<float> v(count);
  for (float& x : v) x = scale * float(rng.uniform(-1.0, 1.0));
  return v;
}

struct Reference {
  const ConvPoolGeometry& g;
  const std::vector<float>& x;
  const std::vector<float>& w;
  const std::vector<float>& b;
  // ReLU(conv + bias) at (n, o, y, x), in double.
  double act(int n, int o, int y, int x0) const {
    const int k = g.kernel;
    double sum = b[o];
    for (int c = 0; c < g.in_c; ++c)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx)
          sum += double(w[((o * g.in_c + c) * k + ky) * k + kx]) *
                 x[((int64_t(n) * g.in_c + c) * g.in_h + y + ky) * g.in_w + x0 + kx];
    return std::max(sum, 0.0);
  }
};

// Element (n, c, y, x) of a lane layout.
int64_t at(const LaneLayout& l, int n, int c, int y, int x) {
  return int64_t(n) * l.image + int64_t(c / l.lanes) * l.block + int64_t(y) * l.row +
         int64_t(x) * l.column + c % l.lanes;
}

float value(dt type, const std::vector<uint8_t>& bytes, int64_t i) {
  if (type == dt::bf16) return to_float(reinterpret_cast<const Bf16*>(bytes.data())[i]);
  return reinterpret_cast<const float*>(bytes.data())[i];
}

// Whether the machine runs version `isa` (the test skips it otherwise).
bool runs(const std::string& isa) {
  const testing::CappedKernels cap(cap_conv_pool, isa);
  return conv_pool_available() && conv_pool_isa() == isa;
}

using VersionCase = std::tuple<FusedCase, std::string>;

class CpuConvPoolKernels : public ::testing::TestWithParam<VersionCase> {
 protected:
  void SetUp() override {
    isa_ = std::get<1>(GetParam());
    if (!runs(isa_)) GTEST_SKIP() << "this machine does not run the " << isa_ << " version";
    cap_conv_pool(isa_);
  }
  void TearDown() override { cap_conv_pool("avx512"); }
  std::string isa_;
};

TEST_P(CpuConvPoolKernels, ForwardAndBackwardEqualTheReference) {
  const FusedCase& k = std::get<0>(GetParam());
  const ConvPoolGeometry& g = k.g;
  const int oh = g.out_h(), ow = g.out_w(), taps = g.in_c * g.kernel * g.kernel;
  const auto md = Mem::desc({g.n, g.out_c, oh, ow}, k.type, k.layout);
  const auto out = lane_layout(md);
  ASSERT_TRUE(out);
  const int group = isa_ == "avx512" ? 16 : 8;
  if (g.out_c % group != 0 || out->lanes % group != 0) {  // AVX2's cases only
    EXPECT_NE(conv_pool_unsupported(g, *out), "");
    return;
  }
  ASSERT_EQ(conv_pool_unsupported(g, *out), "");
  const auto x = uniform(size_t(g.n) * g.in_c * g.in_h * g.in_w, 1, 1.0f);
  const auto w = uniform(size_t(g.out_c) * taps, 2, 1.0f / std::sqrt(float(taps)));
  const auto b = uniform(size_t(g.out_c), 3, 0.2f);
  std::vector<uint8_t> pooled(md.get_size()), d_pooled(md.get_size());
  std::vector<uint8_t> argmax(md.get_size() / (k.type == dt::bf16 ? 2 : 4));
  std::vector<float> scratch(conv_pool_scratch_floats(g, omp_get_max_threads()));
  conv_pool_forward(x.data(), g, w.data(), b.data(), k.type, pooled.data(), argmax.data(), *out,
                    scratch.data());

  // Forward: each window's maximum, and where it is (the reference's first
  // maximum; a window whose two largest values are nearer than the
  // rounding may name either).
  const Reference ref{g, x, w, b};
  const double tolerance = k.type == dt::bf16 ? 1.0 / 128 : 1e-5;
  int checked = 0, positive = 0;
  for (int n = 0; n < g.n; ++n)
    for (int o = 0; o < g.out_c; ++o)
      for (int py = 0; py < oh; ++py)
        for (int px = 0; px < ow; ++px) {
          double best = -1;
          int where = 0;
          for (int i = 0; i < g.pool * g.pool; ++i) {
            const double v = ref.act(n, o, py * g.pool + i / g.pool, px * g.pool + i % g.pool);
            if (v > best) best = v, where = i;
          }
          const int64_t e = at(*out, n, o, py, px);
          const int got = argmax_position(argmax[e]);
          ASSERT_LT(got, g.pool * g.pool);
          // The flag says whether the stored maximum is positive (backward
          // reads it instead of the pooled map).
          ASSERT_EQ(argmax_passes(argmax[e]), value(k.type, pooled, e) > 0)
              << k.name << " at n" << n << " c" << o << " (" << py << ", " << px << ")";
          const double at_got =
              ref.act(n, o, py * g.pool + got / g.pool, px * g.pool + got % g.pool);
          ASSERT_NEAR(value(k.type, pooled, e), best, tolerance * std::max(1.0, best))
              << k.name << " at n" << n << " c" << o << " (" << py << ", " << px << ")";
          if (got != where) {
            ASSERT_NEAR(at_got, best, 1e-5) << "argmax " << got << " for " << where;
          }
          ++checked;
          positive += best > 0;
        }
  EXPECT_EQ(checked, g.n * g.out_c * oh * ow);
  EXPECT_GT(positive, checked / 4);  // the ReLU left enough to route gradient
  EXPECT_LT(positive, checked);      // and some windows whose flag is set

  // Backward: gradient flows from each pooled element with a value > 0 to
  // its window's argmax, then to the weights and the bias.
  const auto grads = uniform(size_t(g.n) * g.out_c * oh * ow, 4, 1.0f);
  for (int n = 0, i = 0; n < g.n; ++n)
    for (int o = 0; o < g.out_c; ++o)
      for (int py = 0; py < oh; ++py)
        for (int px = 0; px < ow; ++px, ++i) {
          const int64_t e = at(*out, n, o, py, px);
          if (k.type == dt::bf16)
            reinterpret_cast<Bf16*>(d_pooled.data())[e] = to_bf16(grads[i]);
          else
            reinterpret_cast<float*>(d_pooled.data())[e] = grads[i];
        }
  std::vector<double> want_dw(w.size()), want_db(b.size());
  for (int n = 0; n < g.n; ++n)
    for (int o = 0; o < g.out_c; ++o)
      for (int py = 0; py < oh; ++py)
        for (int px = 0; px < ow; ++px) {
          const int64_t e = at(*out, n, o, py, px);
          if (!(value(k.type, pooled, e) > 0)) continue;
          const double grad = value(k.type, d_pooled, e);
          const int i = argmax_position(argmax[e]);
          const int y = py * g.pool + i / g.pool, x0 = px * g.pool + i % g.pool;
          want_db[o] += grad;
          for (int c = 0; c < g.in_c; ++c)
            for (int ky = 0; ky < g.kernel; ++ky)
              for (int kx = 0; kx < g.kernel; ++kx)
                want_dw[((o * g.in_c + c) * g.kernel + ky) * g.kernel + kx] +=
                    grad * x[((int64_t(n) * g.in_c + c) * g.in_h + y + ky) * g.in_w + x0 + kx];
        }
  std::vector<float> dw(w.size(), NAN), db(b.size(), NAN);
  conv_pool_backward(x.data(), g, k.type, d_pooled.data(), argmax.data(), *out, dw.data(),
                     db.data(), scratch.data());
  double largest_w = 0, largest_b = 0;
  for (double v : want_dw) largest_w = std::max(largest_w, std::fabs(v));
  for (double v : want_db) largest_b = std::max(largest_b, std::fabs(v));
  for (size_t i = 0; i < dw.size(); ++i)
    ASSERT_NEAR(dw[i], want_dw[i], 1e-5 * largest_w) << k.name << " weight " << i;
  for (size_t i = 0; i < db.size(); ++i)
    ASSERT_NEAR(db[i], want_db[i], 1e-5 * largest_b) << k.name << " bias " << i;

  // The same inputs give the same bits (threads' sums added in order).
  std::vector<float> again_dw(w.size()), again_db(b.size());
  conv_pool_backward(x.data(), g, k.type, d_pooled.data(), argmax.data(), *out, again_dw.data(),
                     again_db.data(), scratch.data());
  EXPECT_EQ(again_dw, dw);
  EXPECT_EQ(again_db, db);
}

ConvPoolGeometry geometry(int n, int in_c, int h, int w, int out_c, int kernel, int pool) {
  ConvPoolGeometry g;
  g.n = n, g.in_c = in_c, g.in_h = h, g.in_w = w, g.out_c = out_c, g.kernel = kernel, g.pool = pool;
  return g;
}

std::vector<FusedCase> fused_cases() {
  return {
      // The paper's conv1 (odd map: 29 conv rows, the last one dropped).
      FusedCase{"Rgb3x3Pool2", geometry(3, 3, 31, 34, 32, 3, 2), tag::nChw16c, dt::f32},
      FusedCase{"Rgb3x3Pool2Bf16", geometry(3, 3, 31, 34, 32, 3, 2), tag::nChw16c, dt::bf16},
      FusedCase{"Rgb3x3Pool2Nhwc", geometry(2, 3, 20, 27, 32, 3, 2), tag::nhwc, dt::f32},
      FusedCase{"Rgb3x3Pool2NhwcBf16", geometry(2, 3, 20, 27, 32, 3, 2), tag::nhwc, dt::bf16},
      // Three groups at 2x2: a pair of groups a tile, then the third alone.
      FusedCase{"Rgb3x3Pool2By48", geometry(2, 3, 21, 26, 48, 3, 2), tag::nChw16c, dt::f32},
      FusedCase{"Rgb5x5Pool3", geometry(2, 3, 23, 19, 16, 5, 3), tag::nChw16c, dt::f32},
      FusedCase{"Rgb5x5Pool3Bf16", geometry(2, 3, 23, 19, 16, 5, 3), tag::nChw16c, dt::bf16},
      FusedCase{"Gray1x1Pool4Bf16", geometry(2, 1, 18, 21, 48, 1, 4), tag::nhwc, dt::bf16},
      FusedCase{"Gray1x1Pool4", geometry(2, 1, 18, 21, 48, 1, 4), tag::nChw16c, dt::f32},
      FusedCase{"Four2x2Pool2", geometry(1, 4, 15, 40, 16, 2, 2), tag::nhwc, dt::bf16},
      FusedCase{"Rgb4x4Pool3", geometry(2, 3, 17, 16, 48, 4, 3), tag::nhwc, dt::f32},
      // oneDNN's layout on AVX2 CPUs, and channels in eights but not
      // sixteens (the AVX2 version only).
      FusedCase{"Rgb3x3Pool2Blocked8", geometry(3, 3, 31, 34, 32, 3, 2), tag::nChw8c, dt::f32},
      FusedCase{"Rgb3x3Pool2Blocked8Bf16", geometry(2, 3, 21, 26, 32, 3, 2), tag::nChw8c, dt::bf16},
      FusedCase{"Rgb3x3Pool2By24Blocked8", geometry(2, 3, 19, 22, 24, 3, 2), tag::nChw8c, dt::f32},
      FusedCase{"Rgb3x3Pool2By8Nhwc", geometry(2, 3, 18, 17, 8, 3, 2), tag::nhwc, dt::f32},
      FusedCase{"Rgb5x5Pool3By8Blocked8", geometry(2, 3, 23, 19, 8, 5, 3), tag::nChw8c, dt::f32},
      FusedCase{"Gray1x1Pool4By24Blocked8Bf16", geometry(2, 1, 18, 21, 24, 1, 4), tag::nChw8c,
                dt::bf16},
      FusedCase{"Two4x4Pool4Blocked8", geometry(2, 2, 22, 23, 16, 4, 4), tag::nChw8c, dt::f32}};
}

INSTANTIATE_TEST_SUITE_P(Geometries, CpuConvPoolKernels,
                         ::testing::Combine(::testing::ValuesIn(fused_cases()),
                                            ::testing::Values("avx512", "avx2")),
                         [](const ::testing::TestParamInfo<VersionCase>& info) {
                           return std::get<0>(info.param).name + "_" + std::get<1>(info.param);
                         });

TEST(CpuConvPoolKernels, SayWhatTheyCannotRun) {
  const auto layout = [](int c, tag t) {
    return *lane_layout(Mem::desc({2, c, 9, 9}, dt::f32, t));
  };
  const ConvPoolGeometry paper = geometry(2, 3, 20, 20, 32, 3, 2);
  for (const std::string isa : {"avx512", "avx2"}) {
    if (!runs(isa)) continue;
    const testing::CappedKernels cap(cap_conv_pool, isa);
    const std::string group = isa == "avx512" ? "16" : "8";
    EXPECT_EQ(conv_pool_unsupported(paper, layout(32, tag::nChw16c)), "") << isa;
    EXPECT_EQ(conv_pool_unsupported(paper, layout(32, tag::nhwc)), "") << isa;
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 5, 20, 20, 32, 3, 2), layout(32, tag::nChw16c)),
              "more than 4 input channels");
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 3, 20, 20, 12, 3, 2), layout(12, tag::nhwc)),
              "output channels not a multiple of " + group);
    EXPECT_EQ(conv_pool_unsupported(paper, layout(32, tag::nChw4c)),
              "pooled layout without " + group + "-lane groups");
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 3, 20, 20, 32, 7, 2), layout(32, tag::nChw16c)),
              "kernel outside 1-5");
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 3, 20, 20, 32, 3, 5), layout(32, tag::nChw16c)),
              "pool outside 2-4");
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 3, 22, 22, 32, 3, 2), layout(32, tag::nChw16c)),
              "pooled layout of another shape");  // 10 x 10 pooled, the layout is 9 x 9
    // 48 channels in 32-lane blocks: two blocks, 16 padding lanes.
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 3, 20, 20, 48, 3, 2), layout(48, tag::nChw32c)),
              "pooled layout with padding channels");
  }
  // The AVX-512 version's groups are sixteens, the AVX2 one's eights.
  if (runs("avx512")) {
    const testing::CappedKernels cap(cap_conv_pool, "avx512");
    EXPECT_EQ(conv_pool_unsupported(paper, layout(32, tag::nChw8c)),
              "pooled layout without 16-lane groups");
  }
  if (runs("avx2")) {
    const testing::CappedKernels cap(cap_conv_pool, "avx2");
    EXPECT_EQ(conv_pool_unsupported(paper, layout(32, tag::nChw8c)), "");
    EXPECT_EQ(conv_pool_unsupported(geometry(2, 3, 20, 20, 24, 3, 2), layout(24, tag::nChw8c)), "");
  }
}

TEST(CpuConvPoolKernels, RunTheBestVersionWithinTheirCap) {
  {
    const testing::CappedKernels cap(cap_conv_pool, "portable");
    EXPECT_FALSE(conv_pool_available());
    EXPECT_EQ(conv_pool_isa(), "portable");
  }
  {
    const testing::CappedKernels cap(cap_conv_pool, "avx2");
    EXPECT_NE(conv_pool_isa(), "avx512");
  }
  EXPECT_EQ(conv_pool_available(), conv_pool_isa() != "portable");
  EXPECT_EQ(conv_pool_isa(), kernel_isa_name(machine_kernel_isa()));
  EXPECT_THROW(cap_conv_pool("sse4"), Error);
}

// Both versions take each value's terms in one order: the same pooled map,
// argmax bytes and gradients to the bit (where the machine runs both).
TEST(CpuConvPoolKernels, BothVersionsGiveTheSameBits) {
  if (!runs("avx512") || !runs("avx2")) GTEST_SKIP() << "needs both versions";
  for (const dt type : {dt::f32, dt::bf16}) {
    const ConvPoolGeometry g = geometry(3, 3, 29, 35, 32, 3, 2);
    const auto md = Mem::desc({g.n, g.out_c, g.out_h(), g.out_w()}, type, tag::nChw16c);
    const auto out = *lane_layout(md);
    const int taps = g.in_c * g.kernel * g.kernel;
    const auto x = uniform(size_t(g.n) * g.in_c * g.in_h * g.in_w, 5, 1.0f);
    const auto w = uniform(size_t(g.out_c) * taps, 6, 1.0f / std::sqrt(float(taps)));
    const auto b = uniform(size_t(g.out_c), 7, 0.2f);
    std::vector<uint8_t> d_pooled(md.get_size());
    const size_t values = d_pooled.size() / (type == dt::bf16 ? sizeof(Bf16) : sizeof(float));
    const auto grads = uniform(values, 8, 1.0f);
    if (type == dt::bf16)
      for (size_t i = 0; i < values; ++i)
        reinterpret_cast<Bf16*>(d_pooled.data())[i] = to_bf16(grads[i]);
    else
      std::memcpy(d_pooled.data(), grads.data(), d_pooled.size());
    struct Result {
      std::vector<uint8_t> pooled, argmax;
      std::vector<float> dw, db;
    };
    const auto run = [&](const std::string& isa) {
      const testing::CappedKernels cap(cap_conv_pool, isa);
      Result r{std::vector<uint8_t>(md.get_size()), std::vector<uint8_t>(md.get_size()),
               std::vector<float>(w.size()), std::vector<float>(b.size())};
      std::vector<float> scratch(conv_pool_scratch_floats(g, omp_get_max_threads()));
      conv_pool_forward(x.data(), g, w.data(), b.data(), type, r.pooled.data(), r.argmax.data(),
                        out, scratch.data());
      conv_pool_backward(x.data(), g, type, d_pooled.data(), r.argmax.data(), out, r.dw.data(),
                         r.db.data(), scratch.data());
      return r;
    };
    const Result wide = run("avx512"), narrow = run("avx2");
    EXPECT_EQ(wide.pooled, narrow.pooled);
    EXPECT_EQ(wide.argmax, narrow.argmax);
    EXPECT_EQ(wide.dw, narrow.dw);
    EXPECT_EQ(wide.db, narrow.db);
  }
}

}  // namespace
}  // namespace histocnn::cpu
