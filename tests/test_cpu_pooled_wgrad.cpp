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
  void TearDown() override { set_portable_pooled_wgrad(false); }
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

  auto ours = [&](bool accumulate, std::vector<float>& dw, std::vector<float>& db) {
    pooled_weight_gradient(k.type, x_l.get_data_handle(), in, maps->pooled.get_data_handle(),
                           maps->d_pooled.get_data_handle(), maps->argmax.data(), out, conv,
                           dw.data(), db.data(), accumulate);
  };
  std::vector<std::vector<float>> by_path;
  for (bool portable : {false, true}) {
    set_portable_pooled_wgrad(portable);
    const std::string where = k.name + " " + pooled_wgrad_isa(in, out, conv);
    std::vector<float> dw(weights, NAN), db(size_t(k.out_c), NAN);
    ours(false, dw, db);
    expect_near(dw, want_dw, 1e-4, where + " dW");
    expect_near(db, want_db, 1e-4, where + " db");
    // One thread or the team: each output channel's terms in the same order.
    const int team = omp_get_max_threads();
    omp_set_num_threads(1);
    std::vector<float> dw1(weights, NAN), db1(size_t(k.out_c), NAN);
    ours(false, dw1, db1);
    omp_set_num_threads(std::max(team, 3));
    std::vector<float> dw3(weights, NAN), db3(size_t(k.out_c), NAN);
    ours(false, dw3, db3);
    omp_set_num_threads(team);
    EXPECT_EQ(dw1, dw) << where << ": 1 thread";
    EXPECT_EQ(db1, db) << where << ": 1 thread";
    EXPECT_EQ(dw3, dw) << where << ": 3 threads or more";
    // Accumulating: what the sums held, plus the batch's terms.
    std::vector<float> twice = dw, twice_db = db;
    ours(true, twice, twice_db);
    for (size_t i = 0; i < weights; ++i) ASSERT_EQ(twice[i], dw[i] + dw[i]) << where << " " << i;
    by_path.push_back(dw);
  }
  expect_near(by_path[0], by_path[1], 1e-5, k.name + ": AVX-512 against portable");
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
  const auto pooled = exact_values(md_p.get_size() / 4, 62, -1, 1);
  const auto d_pooled = exact_values(md_p.get_size() / 4, 63, -1, 1);
  std::vector<uint8_t> argmax(md_p.get_size() / 4);
  Rng rng(64);
  for (auto& a : argmax) a = uint8_t(rng.next() % 4);
  const PooledConv conv{c, o, 3, 0, 2};
  std::vector<float> whole(size_t(o) * c * 9, NAN), sliced(whole.size(), NAN);
  std::vector<float> whole_db(static_cast<size_t>(o), NAN), sliced_db(whole_db.size(), NAN);
  pooled_weight_gradient(dt::f32, x.data(), *in, pooled.data(), d_pooled.data(), argmax.data(),
                         *out, conv, whole.data(), whole_db.data(), false);
  LaneLayout one_in = *in, one_out = *out;
  one_in.n = one_out.n = 1;
  for (int j = 0; j < n; ++j)
    pooled_weight_gradient(dt::f32, x.data() + j * in->image, one_in,
                           pooled.data() + j * out->image, d_pooled.data() + j * out->image,
                           argmax.data() + j * out->image, one_out, conv, sliced.data(),
                           sliced_db.data(), j > 0);
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
    // The AVX-512 scan's window table holds pools up to 4; a pool of 5
    // takes the portable version.
    all.push_back({"Pool3Padded" + t, tag::nChw16c, type, 2, 16, 16, 14, 13, 3, 1, 3});
    all.push_back({"Pool5" + t, tag::nChw16c, type, 1, 16, 16, 13, 12, 3, 1, 5});
  }
  return all;
}

INSTANTIATE_TEST_SUITE_P(Layouts, CpuPooledWgrad, ::testing::ValuesIn(wgrad_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace histocnn::cpu
