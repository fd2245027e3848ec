// The CPU step's data gradient from the pooled gradient
// (backends/cpu/pooled_dgrad_kernels.h) against the reference convolution's
// from the scattered gradient, in the layouts oneDNN hands it (nchw, nhwc,
// nChw8c, nChw16c with padded channels), fp32 and bf16, through the AVX-512,
// the AVX2 and the portable code (each where this CPU and the layout allow
// it); every element written; the same bits on any number of threads (which
// changes the bands).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <dnnl.hpp>

#include "backends/cpu/pooled_dgrad_kernels.h"
#include "core/bf16.h"
#include "core/error.h"
#include "cpu_pooled_cases.h"
#include "nn/reference.h"
#include "onednn_layouts.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

using pooled_cases::exact_values;
using DgradCase = pooled_cases::KernelCase;

class CpuPooledDgrad : public ::testing::TestWithParam<DgradCase>,
                       protected testing::OneDnnLayouts {
 protected:
  void TearDown() override { cap_pooled_dgrad("avx512"); }
};

// The raw memory holds no NaN (it was filled with NaN bits first): every
// element, padding included, was written.
bool all_written(const Mem& m, dt type) {
  const size_t bytes = m.get_desc().get_size();
  const auto* p = static_cast<const uint8_t*>(m.get_data_handle());
  if (type == dt::f32) {
    for (size_t i = 0; i < bytes; i += 4) {
      float v;
      std::memcpy(&v, p + i, 4);
      if (std::isnan(v)) return false;
    }
    return true;
  }
  for (size_t i = 0; i < bytes; i += 2) {
    uint16_t b;
    std::memcpy(&b, p + i, 2);
    if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) return false;
  }
  return true;
}

std::vector<uint8_t> bytes_of(const Mem& m) {
  const auto* p = static_cast<const uint8_t*>(m.get_data_handle());
  return {p, p + m.get_desc().get_size()};
}

TEST_P(CpuPooledDgrad, EqualsTheReferenceFromTheScatteredGradient) {
  const DgradCase& k = GetParam();
  const auto maps = pooled_cases::pooled_maps(k, *this, 72);
  ASSERT_TRUE(maps) << k.name;
  const LaneLayout& in = maps->in;
  const LaneLayout& out = maps->out;
  const PooledConv conv{k.in_c, k.out_c, k.kernel, k.pad, k.pool};
  ASSERT_TRUE(pooled_dgrad_applies(in, out, conv));
  const size_t weights = size_t(k.out_c) * k.in_c * k.kernel * k.kernel;
  const auto w = exact_values(weights, 74, -0.5f, 0.5f);
  std::vector<float> want(maps->plain_x.get_size() / 4), x(want.size(), 0.0f), dw(weights);
  reference::conv2d_backward(x.data(), w.data(), maps->d_act.data(), want.data(), dw.data(),
                             nullptr, k.n, k.in_c, k.h, k.w, k.out_c, k.kernel, k.pad);

  const int stride = in.blocks * in.lanes;
  std::vector<float> arranged(size_t(k.out_c) * k.kernel * k.kernel * stride);
  arrange_dgrad_weights(w.data(), conv, in, k.type == dt::bf16, arranged.data());
  HostFloats sums;
  auto ours = [&]() {
    // bf16's band buffers, exactly as large as the contract says (ASan sees
    // a band past them), NaN until the kernel zeroes what it sums in.
    if (k.type == dt::bf16)
      sums.assign(pooled_dgrad_sums_floats(in, conv, omp_get_max_threads()), std::nanf(""));
    Mem d_src(maps->md_x, engine());
    std::memset(d_src.get_data_handle(), 0xff, maps->md_x.get_size());  // NaN bits
    pooled_data_gradient(k.type, maps->d_pooled.get_data_handle(), maps->argmax.data(), out,
                         arranged.data(), conv, d_src.get_data_handle(), in, sums);
    return d_src;
  };
  const double tolerance = k.type == dt::f32 ? 1e-5 : 8e-3;  // bf16: rounded once
  std::vector<std::vector<float>> by_path;
  for (const char* isa : {"avx512", "avx2", "portable"}) {
    cap_pooled_dgrad(isa);
    const std::string where = k.name + " capped at " + isa + ": " + pooled_dgrad_isa(in, out, conv);
    const Mem d_src = ours();
    ASSERT_TRUE(all_written(d_src, k.type)) << where;
    const auto got = to_nchw(d_src, maps->plain_x);
    ASSERT_NO_FATAL_FAILURE(pooled_cases::expect_near(got, want, tolerance, where));
    // Other thread counts, other bands: each element's sums in the same order.
    const int team = omp_get_max_threads();
    for (int threads : {1, 3, 7}) {
      omp_set_num_threads(threads);
      const Mem again = ours();
      omp_set_num_threads(team);
      EXPECT_EQ(bytes_of(again), bytes_of(d_src)) << where << ": " << threads << " threads";
    }
    by_path.push_back(got);
  }
  for (size_t path = 1; path < by_path.size(); ++path)
    for (size_t i = 0; i < by_path[0].size(); ++i)
      ASSERT_NEAR(by_path[0][i], by_path[path][i], tolerance * std::max(1.0f, std::abs(want[i])))
          << k.name << ": the best version against cap " << path << " [" << i << "]";
}

// The bands cover each image's rows once, in order, none a sliver, and every
// edge lies at a row the fewest pooled rows' patches straddle (each such
// row is summed by both bands): one at 2x2 with kernel 3 and pad 1, where
// edges on pool rows had two. (Counted as inside a map long enough that
// its ends do not matter: the rule is the rows' period, the pool.)
TEST(CpuPooledDgradBands, CoverTheRowsAndCutWhereTheFewestPatchesStraddle) {
  auto straddling = [](const PooledConv& k, int edge) {
    int patches = 0;
    for (int p = -8; p * k.pool < edge + 16; ++p) {
      const int top = p * k.pool - k.pad, bottom = top + k.pool + k.kernel - 1;
      patches += top < edge && edge < bottom;
    }
    return patches;
  };
  const PooledConv shapes[] = {{32, 32, 3, 1, 2},
                               {32, 64, 3, 0, 2},
                               {16, 16, 5, 2, 2},
                               {16, 16, 3, 1, 3},
                               {16, 16, 5, 1, 2}};
  for (const PooledConv& k : shapes)
    for (int h : {4, 9, 50, 100})
      for (int n : {1, 2, 10})
        for (int threads : {1, 2, 16}) {
          LaneLayout in;
          in.n = n, in.h = h, in.w = h;
          const PooledDgradBands bands = pooled_dgrad_bands(in, k, threads);
          const std::string where = "kernel " + std::to_string(k.kernel) + ", pad " +
                                    std::to_string(k.pad) + ", pool " + std::to_string(k.pool) +
                                    ", " + std::to_string(h) + " rows, " + std::to_string(n) +
                                    " images, " + std::to_string(threads) + " threads";
          EXPECT_EQ(bands.rows % k.pool, 0) << where;
          EXPECT_EQ(bands.count, (h + bands.rows - 1) / bands.rows) << where << ": as unshifted";
          int fewest = 1 << 20;
          for (int y = 0; y < k.pool; ++y) fewest = std::min(fewest, straddling(k, y));
          int next = 0, longest = 0;
          for (int i = 0; i < bands.count; ++i) {
            const auto [y0, y1] = bands.band(i, h);
            longest = std::max(longest, y1 - y0);
            ASSERT_EQ(y0, next) << where << ": band " << i;
            ASSERT_GE(y1 - y0,
                      std::min(h - (bands.count - 1) * bands.rows, bands.rows - bands.shift))
                << where << ": band " << i << " is a sliver";
            if (y0 > 0) {
              EXPECT_EQ(straddling(k, y0), fewest) << where << ": edge " << y0;
            }
            next = y1;
          }
          EXPECT_EQ(next, h) << where;
          EXPECT_EQ(bands.longest(h), longest) << where;
          // bf16's sums: the longest band of every block, a thread; no
          // fewer images need more.
          in.blocks = 2, in.lanes = 16, in.column = 16, in.row = int64_t(h) * 16;
          const size_t floats = pooled_dgrad_sums_floats(in, k, threads);
          EXPECT_EQ(floats, size_t(threads) * 2 * size_t(longest) * size_t(in.row)) << where;
          for (int fewer = 1; fewer < n; ++fewer) {
            LaneLayout part = in;
            part.n = fewer;
            EXPECT_LE(pooled_dgrad_sums_floats(part, k, threads), floats) << where << ", " << fewer;
          }
        }
  // conv3 of the paper's network at batch 10 on 16 threads: bands of 8 rows,
  // each edge straddled by one pooled row's patch.
  LaneLayout conv3;
  conv3.n = 10, conv3.h = 50, conv3.w = 50;
  const PooledDgradBands b = pooled_dgrad_bands(conv3, {32, 64, 3, 1, 2}, 16);
  EXPECT_EQ(b.rows, 8);
  EXPECT_EQ(b.band(1, 50), std::make_pair(7, 15));
}

TEST(CpuPooledDgradWeights, ArrangedByBlockChannelAndTapWithZeroPadding) {
  const PooledConv conv{11, 2, 3, 1, 2};  // 11 input channels: 2 blocks of 8, 5 lanes padding
  LaneLayout in;
  in.blocks = 2, in.lanes = 8;
  std::vector<float> oihw(2 * 11 * 9);
  for (size_t i = 0; i < oihw.size(); ++i) oihw[i] = 1.0f + float(i) / 1024.0f;
  std::vector<float> arranged(2 * 8 * 2 * 9, NAN);
  arrange_dgrad_weights(oihw.data(), conv, in, false, arranged.data());
  for (int cb = 0; cb < 2; ++cb)
    for (int o = 0; o < 2; ++o)
      for (int t = 0; t < 9; ++t)
        for (int l = 0; l < 8; ++l) {
          const int c = cb * 8 + l;
          const float want = c < 11 ? oihw[size_t((o * 11 + c) * 9 + t)] : 0.0f;
          ASSERT_EQ(arranged[size_t(((cb * 2 + o) * 9 + t) * 8 + l)], want)
              << cb << " " << o << " " << t << " " << l;
        }
  arrange_dgrad_weights(oihw.data(), conv, in, true, arranged.data());
  EXPECT_EQ(arranged[8], round_to_bf16(oihw[1])) << "block 0, channel 0, tap 1";
  EXPECT_NE(round_to_bf16(oihw[1]), oihw[1]) << "the test's weight must need rounding";
}

TEST(CpuPooledDgradFast, OnlyKernel3Pool2InSixteenOrEightChannelBlocks) {
  const auto in = lane_layout(Mem::desc({2, 32, 12, 12}, dt::f32, tag::nChw16c));
  const auto out = lane_layout(Mem::desc({2, 16, 6, 6}, dt::f32, tag::nChw16c));
  const auto in8 = lane_layout(Mem::desc({2, 32, 12, 12}, dt::f32, tag::nChw8c));
  const auto out8 = lane_layout(Mem::desc({2, 16, 6, 6}, dt::f32, tag::nChw8c));
  ASSERT_TRUE(in && out && in8 && out8);
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const PooledConv conv{32, 16, 3, 1, 2};
  EXPECT_TRUE(pooled_dgrad_applies(*in, *out, conv));
  EXPECT_FALSE(pooled_dgrad_applies(*in, *out, {32, 16, 3, 1, 9})) << "argmax past a byte";
  EXPECT_FALSE(pooled_dgrad_fast(*in, *out, {32, 16, 5, 2, 2})) << "kernel 5";
  EXPECT_FALSE(pooled_dgrad_fast(*in8, *out, conv)) << "8- and 16-channel blocks";
  EXPECT_EQ(pooled_dgrad_fast(*in, *out, conv), avx512);
  EXPECT_EQ(pooled_dgrad_isa(*in, *out, conv), avx512 ? "avx512" : "portable");
  EXPECT_EQ(pooled_dgrad_fast(*in8, *out8, conv), avx2);
  EXPECT_EQ(pooled_dgrad_isa(*in8, *out8, conv), avx2 ? "avx2" : "portable");
  cap_pooled_dgrad("avx2");
  EXPECT_FALSE(pooled_dgrad_fast(*in, *out, conv)) << "capped at AVX2";
  EXPECT_EQ(pooled_dgrad_fast(*in8, *out8, conv), avx2) << "capped at AVX2";
  cap_pooled_dgrad("portable");
  EXPECT_FALSE(pooled_dgrad_fast(*in, *out, conv)) << "portable forced";
  EXPECT_FALSE(pooled_dgrad_fast(*in8, *out8, conv)) << "portable forced";
  cap_pooled_dgrad("avx512");
  EXPECT_THROW(cap_pooled_dgrad("sse"), Error);
}

std::vector<DgradCase> dgrad_cases() {
  std::vector<DgradCase> all;
  for (dt type : {dt::f32, dt::bf16}) {
    const std::string t = type == dt::f32 ? "F32" : "Bf16";
    all.push_back({"Conv2Like" + t, tag::nChw16c, type, 2, 32, 32, 14, 14, 3, 1, 2});
    all.push_back({"Conv3LikeOddMap" + t, tag::nChw16c, type, 3, 32, 64, 13, 11, 3, 1, 2});
    all.push_back({"Unpadded" + t, tag::nChw16c, type, 2, 16, 16, 12, 15, 3, 0, 2});
    all.push_back({"PaddedChannels" + t, tag::nChw16c, type, 2, 24, 17, 9, 12, 3, 1, 2});
    all.push_back({"Kernel5" + t, tag::nChw16c, type, 2, 16, 20, 11, 10, 5, 2, 2});
    all.push_back({"Nhwc3x3Pool" + t, tag::nhwc, type, 2, 12, 8, 13, 11, 3, 1, 3});
    all.push_back({"Nhwc32" + t, tag::nhwc, type, 2, 32, 16, 12, 13, 3, 1, 2});
    all.push_back({"Nchw" + t, tag::nchw, type, 3, 3, 6, 10, 9, 3, 1, 2});
    all.push_back({"NChw8c" + t, tag::nChw8c, type, 2, 16, 9, 10, 10, 3, 0, 2});
    // oneDNN's blocks on AVX2 CPUs: the AVX2 version's.
    all.push_back({"Conv2Like8c" + t, tag::nChw8c, type, 2, 32, 32, 14, 14, 3, 1, 2});
    all.push_back({"Conv3LikeOddMap8c" + t, tag::nChw8c, type, 3, 32, 64, 13, 11, 3, 1, 2});
    all.push_back({"PaddedChannels8c" + t, tag::nChw8c, type, 2, 12, 13, 9, 12, 3, 1, 2});
    all.push_back({"WideOutput8c" + t, tag::nChw8c, type, 2, 8, 80, 10, 9, 3, 1, 2});
    // More than 64 output channels: the AVX-512 version's masks take 64 at
    // a time.
    all.push_back({"WideOutput" + t, tag::nChw16c, type, 2, 16, 80, 10, 9, 3, 1, 2});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Layouts, CpuPooledDgrad, ::testing::ValuesIn(dgrad_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace histocnn::cpu
