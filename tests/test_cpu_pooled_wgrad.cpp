// The CPU step's weight and bias gradients from the pooled gradient
// (backends/cpu/pooled_wgrad_kernels.h) against the reference convolution's
// from the scattered gradient, in the layouts oneDNN hands them (nchw, nhwc,
// nChw8c, nChw16c with padded channels), fp32 and bf16, through the AVX-512
// and the portable code; the same bits on any number of threads; a batch in
// slices summing to the whole.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <dnnl.hpp>

#include "backends/cpu/pooled_wgrad_kernels.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/host_buffers.h"
#include "core/rng.h"
#include "cpu_pooled_cases.h"
#include "nn/reference.h"
#include "onednn_layouts.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

using pooled_cases::exact_values;
using pooled_cases::expect_near;
using WgradCase = pooled_cases::KernelCase;

class CpuPooledWgrad : public ::testing::TestWithParam<WgradCase>,
                       protected testing::OneDnnLayouts {
 protected:
  void TearDown() override { cap_pooled_wgrad("avx512"); }
};

TEST_P(CpuPooledWgrad, EqualsTheReferenceFromTheScatteredGradient) {
  const WgradCase& k = GetParam();
  const auto maps = pooled_cases::pooled_maps(k, *this, 52);
  ASSERT_TRUE(maps) << k.name;
  const LaneLayout& in = maps->in;
  const LaneLayout& out = maps->out;
  const PooledConv conv{k.in_c, k.out_c, k.kernel, k.pad, k.pool};
  ASSERT_TRUE(pooled_wgrad_applies(in, out, conv));
  const auto x = exact_values(maps->plain_x.get_size() / 4, 51, 0, 1);
  const Mem x_l = to_layout(x, maps->plain_x, maps->md_x);
  const size_t weights = size_t(k.out_c) * k.in_c * k.kernel * k.kernel;
  std::vector<float> want_dw(weights), want_db(size_t(k.out_c)), w(weights, 0.0f);
  reference::conv2d_backward(x.data(), w.data(), maps->d_act.data(), nullptr, want_dw.data(),
                             want_db.data(), k.n, k.in_c, k.h, k.w, k.out_c, k.kernel, k.pad);

  HostFloats scratch;
  auto ours = [&](bool accumulate, std::vector<float>& dw, std::vector<float>& db) {
    pooled_weight_gradient(k.type, x_l.get_data_handle(), in, maps->d_pooled.get_data_handle(),
                           maps->argmax.data(), out, conv, dw.data(), db.data(), accumulate,
                           scratch);
  };
  std::vector<std::vector<float>> by_path;
  for (const char* isa : {"avx512", "avx2", "portable"}) {
    cap_pooled_wgrad(isa);
    const std::string where = k.name + " capped at " + isa + ": " + pooled_wgrad_isa(in, out, conv);
    std::vector<float> dw(weights, NAN), db(size_t(k.out_c), NAN);
    ours(false, dw, db);
    expect_near(dw, want_dw, 1e-4, where + " dW");
    expect_near(db, want_db, 1e-4, where + " db");
    // The same bits run to run on a thread count, whichever thread takes
    // which item; on another count (other items) the same sums.
    const int team = omp_get_max_threads();
    for (int threads : {1, 3, 16}) {
      omp_set_num_threads(threads);
      std::vector<float> dw_a(weights, NAN), db_a(size_t(k.out_c), NAN);
      std::vector<float> dw_b(weights, NAN), db_b(size_t(k.out_c), NAN);
      ours(false, dw_a, db_a);
      ours(false, dw_b, db_b);
      const std::string on = where + " on " + std::to_string(threads) + " threads";
      EXPECT_EQ(dw_a, dw_b) << on;
      EXPECT_EQ(db_a, db_b) << on;
      expect_near(dw_a, dw, 1e-5, on + " dW");
      expect_near(db_a, db, 1e-5, on + " db");
    }
    omp_set_num_threads(team);
    // Accumulating: what the sums held, plus the batch's terms.
    std::vector<float> twice = dw, twice_db = db;
    ours(true, twice, twice_db);
    for (size_t i = 0; i < weights; ++i) ASSERT_EQ(twice[i], dw[i] + dw[i]) << where << " " << i;
    by_path.push_back(dw);
  }
  for (size_t path = 1; path < by_path.size(); ++path)
    expect_near(by_path[0], by_path[path], 1e-5,
                k.name + ": the best version against cap " + std::to_string(path));
}

// The CPU step's micro-batches: slice by slice (views of one image each,
// accumulating after the first), the sums of the whole batch.
TEST(CpuPooledWgradSlices, SlicesSumToTheWholeBatch) {
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  const int n = 3, c = 32, o = 16, h = 12, w = 10;
  const auto md_x = Mem::desc({n, c, h, w}, dt::f32, tag::nChw16c);
  const auto md_p = Mem::desc({n, o, (h - 2) / 2, (w - 2) / 2}, dt::f32, tag::nChw16c);
  const auto in = lane_layout(md_x), out = lane_layout(md_p);
  ASSERT_TRUE(in && out);
  const auto x = exact_values(md_x.get_size() / 4, 61, 0, 1);
  const auto d_pooled = exact_values(md_p.get_size() / 4, 63, -1, 1);
  std::vector<uint8_t> argmax(md_p.get_size() / 4);
  Rng rng(64);
  for (auto& a : argmax)  // about a third of the windows not positive
    a = uint8_t(rng.next() % 4) | (rng.next() % 3 == 0 ? kArgmaxNotPositive : 0);
  const PooledConv conv{c, o, 3, 0, 2};
  std::vector<float> whole(size_t(o) * c * 9, NAN), sliced(whole.size(), NAN);
  std::vector<float> whole_db(static_cast<size_t>(o), NAN), sliced_db(whole_db.size(), NAN);
  HostFloats scratch;
  pooled_weight_gradient(dt::f32, x.data(), *in, d_pooled.data(), argmax.data(), *out, conv,
                         whole.data(), whole_db.data(), false, scratch);
  LaneLayout one_in = *in, one_out = *out;
  one_in.n = one_out.n = 1;
  for (int j = 0; j < n; ++j)
    pooled_weight_gradient(dt::f32, x.data() + j * in->image, one_in,
                           d_pooled.data() + j * out->image, argmax.data() + j * out->image,
                           one_out, conv, sliced.data(), sliced_db.data(), j > 0, scratch);
  expect_near(sliced, whole, 1e-5, "dW");
  expect_near(sliced_db, whole_db, 1e-5, "db");
}

TEST(CpuPooledWgradApplies, RefusesWhatItCannotSum) {
  const auto in = lane_layout(Mem::desc({2, 32, 12, 12}, dt::f32, tag::nChw16c));
  const auto out = lane_layout(Mem::desc({2, 16, 5, 5}, dt::f32, tag::nChw16c));
  ASSERT_TRUE(in && out);
  EXPECT_TRUE(pooled_wgrad_applies(*in, *out, {32, 16, 3, 0, 2}));
  EXPECT_FALSE(pooled_wgrad_applies(*in, *out, {32, 16, 3, 0, 1})) << "no pool";
  EXPECT_FALSE(pooled_wgrad_applies(*in, *out, {32, 16, 3, 0, 9})) << "argmax past a byte";
  EXPECT_FALSE(pooled_wgrad_applies(*in, *out, {33, 16, 3, 0, 2})) << "more channels than held";
  EXPECT_FALSE(pooled_wgrad_applies(*in, *out, {32, 16, 5, 0, 2})) << "windows past the output";
  LaneLayout other = *out;
  other.n = 3;
  EXPECT_FALSE(pooled_wgrad_applies(*in, other, {32, 16, 3, 0, 2})) << "other images";
}

// Which version a shape gets: AVX2 for 8-lane blocks in and out, kernel 3
// and a pool of at most 2 (on a CPU that runs it), and a cap holds it back.
TEST(CpuPooledWgradIsa, Avx2NeedsEightLanesBothWaysKernel3AndAPoolOfAtMostTwo) {
  auto layout = [](int c, int side, tag t) {
    return *lane_layout(Mem::desc({1, c, side, side}, dt::f32, t));
  };
  const LaneLayout in = layout(32, 20, tag::nChw8c);
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const std::string eights = avx2 ? "avx2" : "portable";
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 9, tag::nChw8c), {32, 32, 3, 0, 2}), eights);
  EXPECT_EQ(pooled_wgrad_fast(in, layout(32, 9, tag::nChw8c), {32, 32, 3, 0, 2}), avx2);
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 6, tag::nChw8c), {32, 32, 3, 0, 3}), "portable");
  EXPECT_EQ(
      pooled_wgrad_isa(layout(32, 22, tag::nChw8c), layout(32, 9, tag::nChw8c), {32, 32, 5, 0, 2}),
      "portable");
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 9, tag::nChw16c), {32, 32, 3, 0, 2}), "portable");
  cap_pooled_wgrad("portable");
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 9, tag::nChw8c), {32, 32, 3, 0, 2}), "portable");
  EXPECT_FALSE(pooled_wgrad_fast(in, layout(32, 9, tag::nChw8c), {32, 32, 3, 0, 2}));
  cap_pooled_wgrad("avx512");
  EXPECT_THROW(cap_pooled_wgrad("avx"), Error);
}

// Which version a shape gets: AVX-512 for 16-lane blocks in and out and a
// pool of at most 4 (on a CPU that runs it), else the portable one.
TEST(CpuPooledWgradIsa, AvxNeedsSixteenLanesBothWaysAndAPoolOfAtMostFour) {
  auto layout = [](int c, int side, tag t) {
    return *lane_layout(Mem::desc({1, c, side, side}, dt::f32, t));
  };
  const LaneLayout in = layout(32, 20, tag::nChw16c);
  const std::string fast = pooled_wgrad_isa(in, layout(32, 9, tag::nChw16c), {32, 32, 3, 0, 2});
  if (fast != "avx512") GTEST_SKIP() << "no AVX-512 here";
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 6, tag::nChw16c), {32, 32, 3, 0, 3}), "avx512");
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 3, tag::nChw16c), {32, 32, 3, 0, 5}), "portable");
  EXPECT_EQ(pooled_wgrad_isa(in, layout(32, 9, tag::nChw8c), {32, 32, 3, 0, 2}), "portable");
  cap_pooled_wgrad("avx2");
  EXPECT_NE(pooled_wgrad_isa(in, layout(32, 9, tag::nChw16c), {32, 32, 3, 0, 2}), "avx512");
  cap_pooled_wgrad("avx512");
}

// The work items: every pooled row and image in exactly one item of each
// channel set, bands of whole tiles; one item a set on one thread, about
// four units of every set a thread on more.
TEST(CpuPooledWgradSplit, CoversEveryRowAndImageOnceAndBlocksFirst) {
  auto split_of = [](int n, int out_c, int rows, int threads) {
    LaneLayout out;
    out.n = n, out.h = rows, out.w = 5;
    return pooled_wgrad_split(out, {32, out_c, 3, 0, 2}, threads);
  };
  using S = PooledWgradSplit;
  const S one = split_of(50, 32, 48, 1);
  EXPECT_EQ(one.channels, 32);
  EXPECT_EQ(one.items(), 1);
  const S two = split_of(2, 32, 48, 2);  // conv2 at 200 px on 2 threads: two images a slice
  EXPECT_EQ(two.channels, 16);
  EXPECT_EQ(two.sets, 2);
  EXPECT_EQ(two.image_groups, 2);
  EXPECT_EQ(two.bands, 2);
  EXPECT_EQ(two.items(), 8) << "4 units of both blocks, not a block a thread: threads come free";
  LaneLayout in;
  in.blocks = 2, in.lanes = 16;
  LaneLayout out;
  out.n = 2, out.h = 48, out.w = 48;
  EXPECT_EQ(pooled_wgrad_scratch_floats(in, out, {32, 32, 3, 0, 2}, 1), 0u) << "one thread: none";
  EXPECT_EQ(pooled_wgrad_scratch_floats(in, out, {32, 32, 3, 0, 2}, 2),
            size_t(two.items()) * (16 * 9 * 32 + 16));
  EXPECT_EQ(pooled_wgrad_scratch_floats(in, out, {32, 32, 3, 0, 2}, 4),
            size_t(split_of(2, 32, 48, 4).items()) * (16 * 9 * 32 + 16));
  const S conv3 = split_of(5, 64, 23, 2);
  EXPECT_EQ(conv3.channels, 32) << "two blocks a set, each tile read once for both";
  EXPECT_EQ(conv3.items(), 12) << "2 sets x 3 image groups x 2 bands";
  const S three = split_of(5, 64, 23, 3);
  EXPECT_EQ(three.channels, 32);
  EXPECT_EQ(three.sets, 2);
  EXPECT_EQ(three.items(), 20) << "fewer sets than threads: 6 units of 5 images, so 10";
  const S sixteen = split_of(10, 32, 48, 16);  // and on 16 threads, batch 10
  EXPECT_EQ(sixteen.image_groups, 10);
  EXPECT_EQ(sixteen.bands, 4);
  EXPECT_EQ(sixteen.items(), 80);
  const S odd = split_of(1, 16, 9, 2);
  EXPECT_EQ(odd.bands, 5) << "8 items wanted, 5 tile rows";
  EXPECT_EQ(odd.band_rows, 2) << "a tile row each, the last one short";
  const S many = split_of(300, 16, 3, 2);
  EXPECT_EQ(many.bands, 1);
  EXPECT_EQ(many.image_groups, 8);
  EXPECT_EQ(many.images_per_item, 38);
  for (int threads : {1, 2, 3, 16, 64})
    for (int n : {1, 2, 7, 25, 50, 129, 300})
      for (int out_c : {1, 16, 20, 48, 64})
        for (int rows : {1, 2, 9, 23, 48, 97}) {
          const S s = split_of(n, out_c, rows, threads);
          const std::string where = std::to_string(threads) + " threads, " + std::to_string(n) +
                                    " images, " + std::to_string(out_c) + " channels, " +
                                    std::to_string(rows) + " rows";
          EXPECT_GE(s.channels * s.sets, out_c) << where;
          EXPECT_LT(s.channels * (s.sets - 1), out_c) << where << ": no empty set";
          EXPECT_EQ(s.channels % 16, 0) << where << ": whole blocks";
          EXPECT_EQ(s.band_rows % 2, 0) << where << ": whole tiles";
          EXPECT_GE(s.band_rows * s.bands, rows) << where;
          EXPECT_LT(s.band_rows * (s.bands - 1), rows) << where << ": no empty band";
          EXPECT_GE(s.images_per_item * s.image_groups, n) << where;
          EXPECT_LT(s.images_per_item * (s.image_groups - 1), n) << where << ": no empty item";
          if (threads == 1) {
            EXPECT_EQ(s.items(), 1) << where;
          }
          // Whole images and bands round the four a thread up, at most twice.
          EXPECT_LE(s.items(), 2 * (4 * threads + s.sets)) << where;
        }
}

std::vector<WgradCase> wgrad_cases() {
  std::vector<WgradCase> all;
  for (dt type : {dt::f32, dt::bf16}) {
    const std::string t = type == dt::f32 ? "F32" : "Bf16";
    all.push_back({"Conv2Like" + t, tag::nChw16c, type, 2, 32, 32, 14, 13, 3, 0, 2});
    all.push_back({"Kernel5Padded" + t, tag::nChw16c, type, 2, 16, 20, 11, 10, 5, 2, 2});
    all.push_back({"PaddedChannels" + t, tag::nChw16c, type, 2, 24, 17, 9, 12, 3, 1, 2});
    all.push_back({"Nhwc" + t, tag::nhwc, type, 2, 12, 8, 13, 11, 3, 1, 3});
    all.push_back({"Nchw" + t, tag::nchw, type, 3, 3, 6, 10, 9, 3, 1, 2});
    all.push_back({"NChw8c" + t, tag::nChw8c, type, 2, 16, 9, 10, 10, 3, 0, 2});
    // oneDNN's blocks on AVX2 CPUs: the AVX2 version's (padding, two
    // bands, a partial output block, many images).
    all.push_back({"Conv2Like8c" + t, tag::nChw8c, type, 2, 32, 32, 14, 13, 3, 0, 2});
    all.push_back({"Conv3LikePadded8c" + t, tag::nChw8c, type, 3, 32, 64, 13, 11, 3, 1, 2});
    all.push_back({"PaddedChannels8c" + t, tag::nChw8c, type, 2, 12, 13, 9, 12, 3, 1, 2});
    all.push_back({"TwoBands8c" + t, tag::nChw8c, type, 2, 16, 20, 21, 18, 3, 0, 2});
    all.push_back({"ImagesGrouped8c" + t, tag::nChw8c, type, 259, 8, 8, 6, 7, 3, 0, 2});
    // The AVX-512 scan's window table holds pools up to 4; a pool of 5
    // takes the portable version.
    all.push_back({"Pool3Padded" + t, tag::nChw16c, type, 2, 16, 16, 14, 13, 3, 1, 3});
    all.push_back({"Pool5" + t, tag::nChw16c, type, 1, 16, 16, 13, 12, 3, 1, 5});
    // Work items over uneven bands of rows (9 pooled rows, split on 3 and 16
    // threads) and over groups of images (259 images, the last group short).
    all.push_back({"TwoBands" + t, tag::nChw16c, type, 2, 32, 20, 21, 18, 3, 0, 2});
    all.push_back({"ImagesGrouped" + t, tag::nChw16c, type, 259, 16, 16, 6, 7, 3, 0, 2});
    // More than one tile a row (20 and 21 pooled columns; a tile holds 16),
    // with padding: the right-hand tiles' border terms, and in bf16 their
    // widened inputs, which start at a column other than 0.
    all.push_back({"TilesAcrossPadded" + t, tag::nChw16c, type, 1, 16, 16, 7, 40, 3, 1, 2});
    all.push_back({"TilesAcrossPadded8c" + t, tag::nChw8c, type, 1, 16, 8, 7, 40, 3, 1, 2});
    all.push_back({"TilesAcrossKernel5" + t, tag::nChw16c, type, 1, 16, 20, 9, 42, 5, 2, 2});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Layouts, CpuPooledWgrad, ::testing::ValuesIn(wgrad_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace histocnn::cpu
