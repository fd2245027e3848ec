// Our CUDA kernels' arithmetic on the host (no GPU): the fused max-pool +
// ReLU + bias-gradient kernels and the direct weight-gradient kernel of the
// first convolution, run through their __host__ __device__ functions in the
// kernels' own thread structure (cuda_kernels_on_host.h) and held to the
// naive reference layers. The whole step through these kernels is checked in
// test_cuda_schedule.cpp; on a GPU, `histocnn selftest --device cuda` checks
// the compiled kernels against the CPU backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "cuda_kernels_on_host.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn::cuda {
namespace {

struct PoolCase {
  int n, c, h, w, p;
};

class PoolKernels : public ::testing::TestWithParam<PoolCase> {};

// A ReLU'd map with many zeros (ties at 0) and some exact ties above zero.
std::vector<float> relu_map(size_t count, uint64_t seed) {
  auto v = testing::random_vector(count, seed, -1, 1);
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 11 == 3 && i > 0) v[i] = v[i - 1];  // an exact tie with the left neighbour
    v[i] = std::max(v[i], 0.0f);
  }
  return v;
}

// Every argmax byte of a channels-first pooled map: the position of its
// window's first maximum in `act`, flagged (kArgmaxNotPositive) exactly where
// the stored pooled value is not > 0. Returns how many were flagged.
int expect_argmax_bytes(const std::vector<float>& act, const std::vector<float>& pooled,
                        const std::vector<uint8_t>& argmax, const PoolCase& pc) {
  const PoolGeometry g{pc.h, pc.w, pc.p};
  int flagged = 0;
  for (size_t j = 0; j < pooled.size(); ++j) {
    const int64_t plane = int64_t(j) / (g.pooled_h() * g.pooled_w());
    const int oy = int(j % size_t(g.pooled_h() * g.pooled_w())) / g.pooled_w();
    const int ox = int(j % size_t(g.pooled_w()));
    int first = 0;
    float best = -INFINITY;
    for (int k = 0; k < pc.p * pc.p; ++k) {
      const float v =
          act[size_t((plane * pc.h + oy * pc.p + k / pc.p) * pc.w + ox * pc.p + k % pc.p)];
      if (v > best) best = v, first = k;
    }
    const bool positive = pooled[j] > 0;
    flagged += !positive;
    EXPECT_EQ(argmax_position(argmax[j]), first) << "pooled element " << j;
    EXPECT_EQ(argmax_passes(argmax[j]), positive) << "pooled element " << j;
    if (::testing::Test::HasFailure()) break;
  }
  return flagged;
}

TEST_P(PoolKernels, ForwardAndFusedBackwardEqualTheReferenceLayers) {
  const PoolCase pc = GetParam();
  const PoolGeometry g{pc.h, pc.w, pc.p};
  const int planes = pc.n * pc.c;
  const size_t act_count = size_t(planes) * pc.h * pc.w;
  const size_t pooled_count = size_t(planes) * g.pooled_h() * g.pooled_w();
  auto act = relu_map(act_count, 7);
  // A dead channel (every value 0): its windows all flagged, at any pool size.
  std::fill_n(act.begin(), size_t(pc.h) * pc.w, 0.0f);
  std::vector<float> pooled(pooled_count), want_pooled(pooled_count);
  std::vector<uint8_t> argmax(pooled_count);
  const PoolMaps first{pc.n, {pc.c, pc.h, pc.w, false}, false, pc.p};
  on_host::max_pool_forward(act.data(), nullptr, pooled.data(), argmax.data(), first);
  reference::maxpool_forward(act.data(), want_pooled.data(), pc.n, pc.c, pc.h, pc.w, pc.p);
  EXPECT_EQ(pooled, want_pooled);
  EXPECT_GT(expect_argmax_bytes(act, pooled, argmax, pc), 0);
  {
    // Bias and ReLU after the max equal them before it (the raw conv output
    // pooled): exactly, as both are monotone.
    const auto raw = testing::random_vector(act_count, 9);
    const auto bias = testing::random_vector(size_t(pc.c), 10, -0.5f, 0.5f);
    std::vector<float> activated(act_count), want_biased(pooled_count), biased(pooled_count);
    for (size_t i = 0; i < act_count; ++i)
      activated[i] = std::max(raw[i] + bias[(i / size_t(pc.h * pc.w)) % size_t(pc.c)], 0.0f);
    reference::maxpool_forward(activated.data(), want_biased.data(), pc.n, pc.c, pc.h, pc.w, pc.p);
    std::vector<uint8_t> where(pooled_count);
    on_host::max_pool_forward(raw.data(), bias.data(), biased.data(), where.data(), first);
    EXPECT_EQ(biased, want_biased);
    // The maxima's positions are the raw map's (bias and ReLU are monotone);
    // the flag follows the value after them.
    expect_argmax_bytes(raw, biased, where, pc);
  }

  // Backward: the reference's ReLU' on the pooled map, then its max-pool
  // backward (which reads the conv output; ours reads only argmax, neither
  // the conv output nor the pooled map).
  const auto d_pooled = testing::random_vector(pooled_count, 8);
  std::vector<float> masked(pooled_count), want(act_count);
  reference::relu_backward(pooled.data(), d_pooled.data(), masked.data(), int64_t(pooled_count));
  reference::maxpool_backward(act.data(), masked.data(), want.data(), pc.n, pc.c, pc.h, pc.w, pc.p);
  std::vector<float> d_act(act_count, NAN), sums(static_cast<size_t>(planes)),
      bias(static_cast<size_t>(pc.c));
  on_host::pool_relu_backward(nullptr, d_pooled.data(), argmax.data(), d_act.data(), sums.data(),
                              first);
  EXPECT_EQ(d_act, want);  // every element written, uncovered rows/columns as 0
  // No d_act (conv1's pooled weight-gradient route): the same bias partials.
  std::vector<float> sums_only(sums.size(), NAN);
  on_host::pool_relu_backward(nullptr, d_pooled.data(), argmax.data(), static_cast<float*>(nullptr),
                              sums_only.data(), first);
  EXPECT_EQ(sums_only, sums);
  on_host::column_sums(sums.data(), pc.n, pc.c, bias.data());
  for (int ch = 0; ch < pc.c; ++ch) {
    double b = 0;
    for (int n = 0; n < pc.n; ++n)
      for (int e = 0; e < pc.h * pc.w; ++e) b += want[(size_t(n) * pc.c + ch) * pc.h * pc.w + e];
    EXPECT_NEAR(bias[size_t(ch)], b, 1e-5 * std::max(1.0, std::abs(b))) << "channel " << ch;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolKernels,
                         ::testing::Values(PoolCase{2, 3, 8, 8, 2}, PoolCase{3, 5, 9, 7, 2},
                                           PoolCase{1, 2, 11, 10, 3}, PoolCase{2, 2, 16, 17, 8},
                                           PoolCase{1, 4, 33, 35, 2}));

// --precision bf16: the same kernels over two-byte maps. On maps bf16 holds
// exactly, the maxima, their positions, the bias sums are the fp32 kernels'
// bits, and every stored value is the fp32 value rounded once.
TEST_P(PoolKernels, Bf16MapsGiveTheFp32ResultsRoundedOnce) {
  const PoolCase pc = GetParam();
  const PoolGeometry g{pc.h, pc.w, pc.p};
  const int planes = pc.n * pc.c;
  const size_t act_count = size_t(planes) * pc.h * pc.w;
  const size_t pooled_count = size_t(planes) * g.pooled_h() * g.pooled_w();
  auto raw = testing::random_vector(act_count, 21);
  for (float& v : raw) v = round_to_bf16(v);
  const auto bias = testing::random_vector(size_t(pc.c), 22, -0.5f, 0.5f);
  std::vector<Bf16> raw16(act_count), pooled16(pooled_count);
  for (size_t i = 0; i < act_count; ++i) raw16[i] = to_bf16(raw[i]);
  std::vector<float> pooled(pooled_count);
  std::vector<uint8_t> where(pooled_count), where16(pooled_count);
  const PoolMaps first{pc.n, {pc.c, pc.h, pc.w, false}, false, pc.p};
  on_host::max_pool_forward(raw.data(), bias.data(), pooled.data(), where.data(), first);
  on_host::max_pool_forward(raw16.data(), bias.data(), pooled16.data(), where16.data(), first);
  EXPECT_EQ(where16, where);
  for (size_t i = 0; i < pooled_count; ++i)
    ASSERT_EQ(pooled16[i].bits, to_bf16(pooled[i]).bits) << i;

  std::vector<float> pooled_exact(pooled_count);
  for (size_t i = 0; i < pooled_count; ++i) pooled_exact[i] = to_float(pooled16[i]);
  auto d_pooled = testing::random_vector(pooled_count, 23);
  for (float& v : d_pooled) v = round_to_bf16(v);
  std::vector<Bf16> d_pooled16(pooled_count), d_act16(act_count);
  for (size_t i = 0; i < pooled_count; ++i) d_pooled16[i] = to_bf16(d_pooled[i]);
  std::vector<float> d_act(act_count), sums(static_cast<size_t>(planes)),
      sums16(static_cast<size_t>(planes));
  on_host::pool_relu_backward(nullptr, d_pooled.data(), where.data(), d_act.data(), sums.data(),
                              first);
  on_host::pool_relu_backward(nullptr, d_pooled16.data(), where16.data(), d_act16.data(),
                              sums16.data(), first);
  EXPECT_EQ(sums16, sums);
  for (size_t i = 0; i < act_count; ++i) ASSERT_EQ(to_float(d_act16[i]), d_act[i]) << i;
}

TEST(Bf16, RoundsToNearestEvenAsTorchBfloat16) {
  EXPECT_EQ(to_bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(to_bf16(-2.0f).bits, 0xc000);
  EXPECT_EQ(to_bf16(0.0f).bits, 0x0000);
  EXPECT_EQ(to_bf16(-0.0f).bits, 0x8000);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even (1).
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f).bits, 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: to the even (0x3f82).
  EXPECT_EQ(to_bf16(1.0f + 3 * 0x1p-8f).bits, 0x3f82);
  // Just above halfway rounds up.
  EXPECT_EQ(to_bf16(1.0f + 0x1p-8f + 0x1p-20f).bits, 0x3f81);
  EXPECT_EQ(to_float(to_bf16(3.140625f)), 3.140625f);  // exactly representable
  EXPECT_EQ(to_bf16(INFINITY).bits, 0x7f80);
  EXPECT_EQ(to_bf16(-INFINITY).bits, 0xff80);
  EXPECT_TRUE(std::isnan(to_float(to_bf16(NAN))));
  EXPECT_TRUE(std::isnan(to_float(to_bf16(-NAN))));
  // Beyond bf16's largest finite (0x7f7f = 3.3895e38) the rounding overflows to infinity.
  EXPECT_EQ(to_bf16(3.4e38f).bits, 0x7f80);
  EXPECT_EQ(to_bf16(3.38e38f).bits, 0x7f7e);
  // Subnormals keep their top bits.
  EXPECT_EQ(to_bf16(0x1p-130f).bits, 0x0008);
  // Every value within half a unit: the nearest of the two neighbours.
  Rng rng(5);
  for (int i = 0; i < 100000; ++i) {
    const float x = float(rng.uniform(-1e4, 1e4));
    const float r = round_to_bf16(x);
    const Bf16 b = to_bf16(x);
    const float below = to_float(Bf16{uint16_t(b.bits - 1)}),
                above = to_float(Bf16{uint16_t(b.bits + 1)});
    ASSERT_LE(std::abs(r - x), std::abs(below - x)) << x;
    ASSERT_LE(std::abs(r - x), std::abs(above - x)) << x;
  }
}

TEST(PoolKernels, FirstMaximumWinsTiesAsTheReference) {
  const float plane[] = {0.5f, 0.5f,  //
                         0.5f, 0.2f};
  const WindowMax m = window_max(plane, {2, 2, 2}, 0, 0);
  EXPECT_EQ(m.value, 0.5f);
  EXPECT_EQ(m.at, 0);
  const float later[] = {0.1f, 0.2f,  //
                         0.7f, 0.7f};
  EXPECT_EQ(window_max(later, {2, 2, 2}, 0, 0).at, 2);
}

// The flag is taken from the value as stored: a positive fp32 maximum that
// bf16 rounds to zero passes no gradient in bf16, as ReLU' on the stored
// map would say; NaN is not > 0.
TEST(PoolKernels, TheFlagFollowsTheStoredValue) {
  const float tiny = 0x1p-140f;  // below bf16's least subnormal (2^-133): rounds to 0
  ASSERT_GT(tiny, 0.0f);
  ASSERT_EQ(round_to_bf16(tiny), 0.0f);
  const WindowMax m{tiny, 3};
  float f = NAN;
  Bf16 b{0xffff};
  uint8_t at_f = 0, at_b = 0;
  write_pooled(&f, &at_f, 0, m, nullptr, 0);
  write_pooled(&b, &at_b, 0, m, nullptr, 0);
  EXPECT_EQ(f, tiny);
  EXPECT_EQ(at_f, 3) << "fp32 keeps it positive: not flagged";
  EXPECT_EQ(b.bits, 0);
  EXPECT_EQ(at_b, 3 | kArgmaxNotPositive);
  write_pooled(&f, &at_f, 0, WindowMax{NAN, 2}, nullptr, 0);
  EXPECT_EQ(at_f, 2 | kArgmaxNotPositive);
  const float bias[] = {-1.0f, 1.0f};
  write_pooled(&f, &at_f, 0, WindowMax{0.5f, 1}, bias, 0);  // ReLU(0.5 - 1) = 0
  EXPECT_EQ(f, 0.0f);
  EXPECT_EQ(at_f, 1 | kArgmaxNotPositive);
  write_pooled(&f, &at_f, 0, WindowMax{0.5f, 1}, bias, 1);
  EXPECT_EQ(f, 1.5f);
  EXPECT_EQ(at_f, 1);
}

TEST(PoolKernels, WithoutPoolingIsReluBackwardInPlace) {
  const PoolMaps g{2, {1, 5, 6, false}, false, 1};
  const auto y = relu_map(2 * 30, 3);
  auto d = testing::random_vector(2 * 30, 4);
  std::vector<float> want(d.size());
  reference::relu_backward(y.data(), d.data(), want.data(), int64_t(d.size()));
  std::vector<float> sums(2);
  on_host::pool_relu_backward(y.data(), d.data(), nullptr, d.data(), sums.data(), g);
  EXPECT_EQ(d, want);
  double s0 = 0;
  for (int i = 0; i < 30; ++i) s0 += want[size_t(i)];
  EXPECT_NEAR(sums[0], s0, 1e-6);
}

TEST(ColumnSums, AddEveryRowOfEveryColumn) {
  for (int rows : {1, 7, 8, 9, 1250})
    for (int cols : {1, 31, 33, 864}) {
      const auto in = testing::random_vector(size_t(rows) * cols, uint64_t(rows * cols));
      std::vector<float> out(static_cast<size_t>(cols));
      on_host::column_sums(in.data(), rows, cols, out.data());
      for (int j = 0; j < cols; j += std::max(1, cols / 7)) {
        double want = 0;
        for (int i = 0; i < rows; ++i) want += in[size_t(i) * cols + j];
        ASSERT_NEAR(out[size_t(j)], want, 1e-4 * std::sqrt(double(rows))) << rows << "x" << cols;
      }
    }
}

TEST(SmallWgradPlan, BandsCoverTheRowsWithinSharedMemory) {
  // The paper's conv1 at 200 px: 3 -> 32 channels, kernel 3, no padding.
  for (int batch : {1, 10, 50, 150}) {
    const Dims4 x{batch, 3, 200, 200}, y{batch, 32, 198, 198};
    const SmallWgradPlan p = plan_small_wgrad(x, y, 3, 0, 4 * 132);
    ASSERT_TRUE(p.applies) << batch;
    EXPECT_GE(p.rows_per_band, 1);
    EXPECT_LE(p.rows_per_band, kSmallWgradMaxRows);
    EXPECT_GE(p.bands * p.rows_per_band, y.h);
    EXPECT_LT((p.bands - 1) * p.rows_per_band, y.h);  // no empty band
    EXPECT_LE(p.shared_bytes, kSmallWgradSharedLimit);
    EXPECT_EQ(p.taps, 27);
    EXPECT_EQ(p.workspace_bytes, size_t(batch) * p.bands * 32 * 27 * 4);
    if (batch >= 50) {
      EXPECT_EQ(p.rows_per_band, kSmallWgradMaxRows);  // enough blocks anyway
    }
    if (batch <= 10) {
      // Small batches: more, thinner bands (at most one per output row).
      EXPECT_GE(int64_t(batch) * p.bands, std::min(4 * 132 / 2, batch * y.h));
    }
  }
}

TEST(SmallWgradPlan, RefusesWhatTheKernelWasNotCompiledFor) {
  EXPECT_FALSE(plan_small_wgrad({2, 32, 20, 20}, {2, 32, 18, 18}, 3, 0, 8).applies);  // 32 in
  EXPECT_FALSE(plan_small_wgrad({2, 3, 20, 20}, {2, 8, 14, 14}, 7, 0, 8).applies);    // kernel 7
  EXPECT_FALSE(plan_small_wgrad({2, 3, 20, 20}, {2, 8, 17, 17}, 3, 0, 8).applies);    // bad dims
  // One padded input row of 3 channels no longer fits 48 KB with its halo.
  EXPECT_FALSE(plan_small_wgrad({1, 3, 8, 2000}, {1, 8, 6, 1998}, 3, 0, 8).applies);
  EXPECT_TRUE(plan_small_wgrad({1, 3, 8, 1000}, {1, 8, 6, 998}, 3, 0, 8).applies);
}

struct WgradCase {
  int n, out_c, h, w, kernel, pad, target_blocks;
};
class SmallWgrad : public ::testing::TestWithParam<WgradCase> {};

TEST_P(SmallWgrad, EqualsTheReferenceWeightGradient) {
  const WgradCase wc = GetParam();
  const Dims4 x{wc.n, 3, wc.h, wc.w};
  const Dims4 y = conv_output_dims(x, wc.out_c, wc.kernel, wc.pad);
  const SmallWgradPlan plan = plan_small_wgrad(x, y, wc.kernel, wc.pad, wc.target_blocks);
  ASSERT_TRUE(plan.applies);
  const auto input = testing::random_vector(size_t(x.count()), 1, 0, 1);
  const auto dy = testing::random_vector(size_t(y.count()), 2);
  const auto weights = testing::random_vector(size_t(wc.out_c) * 3 * wc.kernel * wc.kernel, 3);
  const size_t dw_count = size_t(wc.out_c) * plan.taps;
  std::vector<float> want(dw_count), bias(size_t(wc.out_c)), got(dw_count, NAN);
  reference::conv2d_backward(input.data(), weights.data(), dy.data(), nullptr, want.data(),
                             bias.data(), x.n, 3, x.h, x.w, wc.out_c, wc.kernel, wc.pad);
  on_host::small_wgrad(input.data(), dy.data(), got.data(), x, y, wc.kernel, wc.pad, plan);
  for (size_t i = 0; i < dw_count; ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 * std::max(1.0f, std::abs(want[i]))) << "dW[" << i << "]";
  // Channels last (--channels-last): the same tile staged from NHWC maps and
  // the same sums in the same order, so the same bits.
  const SmallWgradPlan last = plan_small_wgrad(x, y, wc.kernel, wc.pad, wc.target_blocks, true);
  std::vector<float> x_last(input.size()), dy_last(dy.size()), from_last(dw_count, NAN);
  on_host::relayout(input.data(), x_last.data(), x.n, x.layout(true));
  on_host::relayout(dy.data(), dy_last.data(), y.n, y.layout(true));
  on_host::small_wgrad(x_last.data(), dy_last.data(), from_last.data(), x, y, wc.kernel, wc.pad,
                       last);
  EXPECT_EQ(from_last, got);
  // The bf16 instantiation reads two-byte maps and sums in fp32: on values
  // bf16 holds exactly, the same bits as the fp32 one.
  auto exact = [](std::vector<float> v) {
    for (float& e : v) e = round_to_bf16(e);
    return v;
  };
  const auto input16 = exact(input), dy16 = exact(dy);
  std::vector<Bf16> x_bf16(input16.size()), dy_bf16(dy16.size());
  for (size_t i = 0; i < input16.size(); ++i) x_bf16[i] = to_bf16(input16[i]);
  for (size_t i = 0; i < dy16.size(); ++i) dy_bf16[i] = to_bf16(dy16[i]);
  std::vector<float> from_fp32(dw_count), from_bf16(dw_count, NAN);
  on_host::small_wgrad(input16.data(), dy16.data(), from_fp32.data(), x, y, wc.kernel, wc.pad,
                       plan);
  on_host::small_wgrad(x_bf16.data(), dy_bf16.data(), from_bf16.data(), x, y, wc.kernel, wc.pad,
                       plan);
  EXPECT_EQ(from_bf16, from_fp32);
  // Two or four output channels at once (kernel 3), channel counts not a
  // multiple of either included: the same products in the same order, so the
  // same bits.
  for (int out_block : {2, 4}) {
    if (!small_wgrad_out_block_supported(wc.kernel, out_block)) continue;
    SmallWgradPlan blocked = plan;
    blocked.out_block = out_block;
    std::vector<float> from_blocked(dw_count, NAN);
    on_host::small_wgrad(input.data(), dy.data(), from_blocked.data(), x, y, wc.kernel, wc.pad,
                         blocked);
    EXPECT_EQ(from_blocked, got) << out_block << " channels at once";
  }
}

// From the pooled gradient: conv1's output pooled (bias and ReLU after the
// max, as the step does), a random pooled gradient; the weight gradient from
// the pooled gradient and argmax (flagged where the pooled value is not
// positive) equals the reference's from the
// full conv-output gradient (which pool_relu_backward scatters), in either
// layout and precision.
struct PooledWgradCase {
  int n, out_c, h, w, kernel, pad, pool, target_blocks;
};
class SmallWgradPooled : public ::testing::TestWithParam<PooledWgradCase> {};

TEST_P(SmallWgradPooled, EqualsTheReferenceFromTheScatteredGradient) {
  const PooledWgradCase wc = GetParam();
  const Dims4 x{wc.n, 3, wc.h, wc.w};
  const Dims4 y = conv_output_dims(x, wc.out_c, wc.kernel, wc.pad);
  const SmallWgradPlan plan =
      plan_small_wgrad_pooled(x, y, wc.kernel, wc.pad, wc.pool, wc.target_blocks);
  ASSERT_TRUE(plan.applies);
  EXPECT_EQ(plan.rows_per_band % wc.pool, 0);
  EXPECT_EQ(plan.bands * plan.rows_per_band >= y.h / wc.pool * wc.pool, true);
  const PoolMaps maps{y.n, y.layout(false), false, wc.pool};
  const MapLayout pl = maps.pooled();
  const size_t pooled_count = size_t(y.n) * pl.c * pl.h * pl.w;
  const auto input = testing::random_vector(size_t(x.count()), 31, 0, 1);
  const auto act = testing::random_vector(size_t(y.count()), 32);  // the raw conv output
  auto bias = testing::random_vector(size_t(y.c), 33, -0.3f, 0.3f);
  bias[0] = -3;  // a channel whose every window is flagged, at any pool size
  const auto d_pooled = testing::random_vector(pooled_count, 34);
  std::vector<float> pooled(pooled_count);
  std::vector<uint8_t> argmax(pooled_count);
  on_host::max_pool_forward(act.data(), bias.data(), pooled.data(), argmax.data(), maps);
  ASSERT_TRUE(std::any_of(argmax.begin(), argmax.end(), [](uint8_t a) {
    return !argmax_passes(a);
  })) << "no flagged window: the flag goes untested";
  std::vector<float> d_act(size_t(y.count()));
  on_host::pool_relu_backward(nullptr, d_pooled.data(), argmax.data(), d_act.data(),
                              static_cast<float*>(nullptr), maps);
  const auto weights = testing::random_vector(size_t(wc.out_c) * plan.taps, 35);
  const size_t dw_count = size_t(wc.out_c) * plan.taps;
  std::vector<float> want(dw_count), bias_grad(size_t(wc.out_c)), got(dw_count, NAN);
  reference::conv2d_backward(input.data(), weights.data(), d_act.data(), nullptr, want.data(),
                             bias_grad.data(), x.n, 3, x.h, x.w, wc.out_c, wc.kernel, wc.pad);
  std::vector<float> got_bias(size_t(wc.out_c), NAN);
  on_host::small_wgrad_pooled(input.data(), d_pooled.data(), argmax.data(), got.data(),
                              got_bias.data(), x, y, false, wc.kernel, wc.pad, plan);
  for (size_t i = 0; i < dw_count; ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 * std::max(1.0f, std::abs(want[i]))) << "dW[" << i << "]";
  // The bias gradient from the same terms: the scattered gradient's sums.
  for (int o = 0; o < wc.out_c; ++o)
    ASSERT_NEAR(got_bias[size_t(o)], bias_grad[size_t(o)],
                1e-4 * std::max(1.0f, std::abs(bias_grad[size_t(o)])))
        << "db[" << o << "]";
  // Channels last, the pooled map either way (the last block's is channels
  // first): the same tile, the same positions in the same order, the same bits.
  for (bool pooled_last : {true, false}) {
    const SmallWgradPlan last =
        plan_small_wgrad_pooled(x, y, wc.kernel, wc.pad, wc.pool, wc.target_blocks, true);
    const PoolMaps maps_last{y.n, y.layout(true), pooled_last, wc.pool};
    std::vector<float> x_last(input.size()), dp_last(pooled_count), from_last(dw_count, NAN),
        bias_last(size_t(wc.out_c), NAN);
    std::vector<uint8_t> a_last(pooled_count);
    on_host::relayout(input.data(), x_last.data(), x.n, x.layout(true));
    const MapLayout pooled_first = pl, pooled_other = maps_last.pooled();
    for (int64_t i = 0; i < int64_t(pooled_count); ++i) {
      const MapCoords c = pooled_first.coords(i);
      const int64_t j = pooled_other.at(c.n, c.c, c.y, c.x);
      dp_last[size_t(j)] = d_pooled[size_t(i)];
      a_last[size_t(j)] = argmax[size_t(i)];
    }
    on_host::small_wgrad_pooled(x_last.data(), dp_last.data(), a_last.data(), from_last.data(),
                                bias_last.data(), x, y, pooled_last, wc.kernel, wc.pad, last);
    EXPECT_EQ(from_last, got) << "channels last, pooled map channels "
                              << (pooled_last ? "last" : "first");
    EXPECT_EQ(bias_last, got_bias);
  }
  // bf16 maps holding exact values: the fp32 instantiation's bits.
  auto exact = [](std::vector<float> v) {
    for (float& e : v) e = round_to_bf16(e);
    return v;
  };
  const auto input16 = exact(input), d_pooled16 = exact(d_pooled);
  auto to16 = [](const std::vector<float>& v) {
    std::vector<Bf16> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = to_bf16(v[i]);
    return out;
  };
  std::vector<float> from_fp32(dw_count), from_bf16(dw_count, NAN), bias_fp32(size_t(wc.out_c)),
      bias_bf16(size_t(wc.out_c), NAN);
  on_host::small_wgrad_pooled(input16.data(), d_pooled16.data(), argmax.data(), from_fp32.data(),
                              bias_fp32.data(), x, y, false, wc.kernel, wc.pad, plan);
  const auto x16 = to16(input16), dp16 = to16(d_pooled16);
  on_host::small_wgrad_pooled(x16.data(), dp16.data(), argmax.data(), from_bf16.data(),
                              bias_bf16.data(), x, y, false, wc.kernel, wc.pad, plan);
  EXPECT_EQ(from_bf16, from_fp32);
  EXPECT_EQ(bias_bf16, bias_fp32);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SmallWgradPooled,
    ::testing::Values(PooledWgradCase{2, 8, 12, 12, 3, 0, 2, 4},
                      PooledWgradCase{3, 5, 13, 11, 3, 0, 2, 1000},  // odd map: rows left over
                      PooledWgradCase{2, 6, 10, 9, 3, 1, 2, 7},      // padded
                      PooledWgradCase{1, 33, 14, 12, 5, 0, 2, 3},    // kernel 5, > 32 channels
                      PooledWgradCase{2, 4, 16, 14, 3, 0, 3, 5}));   // 3 x 3 windows

TEST(SmallWgradPlan, ThePooledRouteBandsHoldWholeWindows) {
  const Dims4 x{4, 3, 200, 200}, y{4, 32, 198, 198};
  for (int target : {1, 8, 132, 528, 100000}) {
    const SmallWgradPlan p = plan_small_wgrad_pooled(x, y, 3, 0, 2, target);
    ASSERT_TRUE(p.applies) << target;
    EXPECT_EQ(p.pool, 2);
    EXPECT_EQ(p.rows_per_band % 2, 0) << target;
    EXPECT_GE(p.rows_per_band, 2);
    EXPECT_LE(p.shared_bytes, kSmallWgradSharedLimit);
    EXPECT_GE(p.bands * p.rows_per_band, 198);
    EXPECT_LT((p.bands - 1) * p.rows_per_band, 198);
    // The taps' partial sums, then the bias's: a row of each per image band.
    const size_t rows = size_t(4) * size_t(p.bands);
    EXPECT_EQ(p.bias_partials_offset(), rows * 32 * 27);
    EXPECT_EQ(p.workspace_bytes, rows * 32 * (27 + 1) * sizeof(float));
  }
  // 197 rows: the last one is in no window and no band.
  const SmallWgradPlan odd =
      plan_small_wgrad_pooled({1, 3, 199, 199}, {1, 8, 197, 197}, 3, 0, 2, 100000);
  EXPECT_EQ(odd.rows_per_band, 2);
  EXPECT_EQ(odd.bands, 98);
  EXPECT_FALSE(plan_small_wgrad_pooled(x, y, 3, 0, 1, 8).applies) << "pool 1: the plain route";
  EXPECT_FALSE(plan_small_wgrad_pooled(x, y, 3, 0, 9, 8).applies) << "beyond the argmax byte";
  EXPECT_FALSE(plan_small_wgrad_pooled({1, 3, 3, 3}, {1, 8, 1, 1}, 3, 0, 2, 8).applies)
      << "no whole window";
}

TEST(SmallWgradPlan, ChannelBlocksAreCompiledForKernel3Only) {
  EXPECT_TRUE(small_wgrad_out_block_supported(3, 1));
  EXPECT_TRUE(small_wgrad_out_block_supported(3, 2));
  EXPECT_TRUE(small_wgrad_out_block_supported(3, 4));
  EXPECT_TRUE(small_wgrad_out_block_supported(5, 1));
  EXPECT_FALSE(small_wgrad_out_block_supported(5, 2));
  EXPECT_FALSE(small_wgrad_out_block_supported(5, 4));
  EXPECT_FALSE(small_wgrad_out_block_supported(3, 3));
  EXPECT_STREQ(small_wgrad_name(4), "HISTOCNN_DIRECT_4CH");
  EXPECT_STREQ(small_wgrad_name(1), "HISTOCNN_DIRECT");
  EXPECT_EQ(plan_small_wgrad({2, 3, 20, 20}, {2, 32, 18, 18}, 3, 0, 8).out_block, 1);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SmallWgrad,
    ::testing::Values(WgradCase{2, 32, 20, 20, 3, 0, 1},    // one band per image
                      WgradCase{2, 32, 20, 20, 3, 0, 40},   // bands of 1 row
                      WgradCase{3, 10, 23, 19, 3, 1, 7},    // padded; last band partial
                      WgradCase{2, 9, 17, 21, 5, 2, 5},     // kernel 5, 'same'
                      WgradCase{1, 64, 40, 33, 5, 0, 100},  // more channels than warps
                      WgradCase{4, 32, 64, 64, 3, 0, 528}));

}  // namespace
}  // namespace histocnn::cuda

namespace histocnn::cuda {
namespace {

// The bf16 batch-norm kernels (bn_kernels.h) on maps bf16 holds exactly,
// against the reference layers: statistics, ReLU(BN(x)) rounded once, the
// running statistics, and the backward pass (dgamma, dbeta, dx).
TEST(BatchNormKernels, Bf16KernelsEqualTheReferenceLayers) {
  const int n = 3, channels = 5, h = 7, w = 9;
  const int64_t per_plane = h * w, count = int64_t(n) * per_plane;
  const size_t total = size_t(n) * channels * per_plane;
  auto x = testing::random_vector(total, 31, -2, 3);
  auto d = testing::random_vector(total, 32);
  for (float& v : x) v = round_to_bf16(v);
  for (float& v : d) v = round_to_bf16(v);
  const auto gamma = testing::random_vector(channels, 33, 0.5f, 1.5f);
  const auto beta = testing::random_vector(channels, 34, -0.5f, 0.5f);
  std::vector<Bf16> x16(total), d16(total), y16(total), dx16(total);
  for (size_t i = 0; i < total; ++i) x16[i] = to_bf16(x[i]), d16[i] = to_bf16(d[i]);

  std::vector<float> mean(channels), inv_std(channels), running_mean(channels, 0.0f),
      running_var(channels, 1.0f);
  on_host::bn_relu_forward(x16.data(), y16.data(), gamma.data(), beta.data(), mean.data(),
                           inv_std.data(), running_mean.data(), running_var.data(), true, n,
                           MapLayout{channels, h, w, false});
  std::vector<float> want_y(total), want_mean(channels), want_var(channels);
  reference::batchnorm_forward_train(x.data(), gamma.data(), beta.data(), want_y.data(),
                                     want_mean.data(), want_var.data(), n, channels,
                                     int(per_plane));
  reference::relu_forward(want_y.data(), want_y.data(), int64_t(total));
  Buffers want_running = Buffers::initial(
      infer_shapes(parse_model_spec("conv 5 kernel=3 pool=1 bn; dense 2"), n, h + 2, w + 2));
  want_running.update(0, want_mean.data(), want_var.data(), channels, count);
  for (int c = 0; c < channels; ++c) {
    EXPECT_NEAR(mean[size_t(c)], want_mean[size_t(c)], 1e-5) << c;
    EXPECT_NEAR(inv_std[size_t(c)], 1 / std::sqrt(want_var[size_t(c)] + kBatchNormEpsilon), 1e-4)
        << c;
    EXPECT_NEAR(running_mean[size_t(c)], want_running.running_mean(0)[c], 1e-6) << c;
    EXPECT_NEAR(running_var[size_t(c)], want_running.running_var(0)[c], 1e-5) << c;
  }
  for (size_t i = 0; i < total; ++i)
    ASSERT_NEAR(to_float(y16[i]), want_y[i], 1e-2 * std::max(1.0f, std::abs(want_y[i]))) << i;

  // Backward from d (ReLU' applied upstream): the reference's dx, dgamma, dbeta.
  std::vector<float> dgamma(channels), dbeta(channels);
  on_host::bn_backward(d16.data(), x16.data(), dx16.data(), gamma.data(), mean.data(),
                       inv_std.data(), dgamma.data(), dbeta.data(), n,
                       MapLayout{channels, h, w, false});
  std::vector<float> want_dx(total), want_dgamma(channels), want_dbeta(channels);
  reference::batchnorm_backward(x.data(), gamma.data(), want_mean.data(), want_var.data(), d.data(),
                                want_dx.data(), want_dgamma.data(), want_dbeta.data(), n, channels,
                                int(per_plane));
  for (int c = 0; c < channels; ++c) {
    EXPECT_NEAR(dbeta[size_t(c)], want_dbeta[size_t(c)], 1e-4) << c;
    EXPECT_NEAR(dgamma[size_t(c)], want_dgamma[size_t(c)], 1e-4) << c;
  }
  double largest = 0;
  for (float v : want_dx) largest = std::max(largest, double(std::abs(v)));
  for (size_t i = 0; i < total; ++i)
    ASSERT_NEAR(to_float(dx16[i]), want_dx[i], 1e-2 * largest) << i;

  // Inference: the running statistics, not the batch's.
  std::vector<Bf16> y_infer(total);
  std::vector<float> m2(channels), s2(channels);
  on_host::bn_relu_forward(x16.data(), y_infer.data(), gamma.data(), beta.data(), m2.data(),
                           s2.data(), running_mean.data(), running_var.data(), false, n,
                           MapLayout{channels, h, w, false});
  std::vector<float> want_infer(total);
  reference::batchnorm_forward_infer(x.data(), gamma.data(), beta.data(), running_mean.data(),
                                     running_var.data(), want_infer.data(), n, channels,
                                     int(per_plane));
  reference::relu_forward(want_infer.data(), want_infer.data(), int64_t(total));
  for (size_t i = 0; i < total; ++i)
    ASSERT_NEAR(to_float(y_infer[i]), want_infer[i], 1e-2 * std::max(1.0f, std::abs(want_infer[i])))
        << i;
}

}  // namespace
}  // namespace histocnn::cuda
