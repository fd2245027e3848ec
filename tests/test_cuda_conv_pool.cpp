// The fused convolution + pool forward kernel (conv_pool_kernels.h) on the
// host, in its own thread structure (conv_pool_on_host.h): its plan, and its
// pooled map and argmax against the reference convolution, ReLU and max pool,
// in either layout, fp32 and bf16, one or two positions a thread.
#include <gtest/gtest.h>

#include <cmath>

#include "conv_pool_on_host.h"
#include "cuda_kernels_on_host.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn::cuda {
namespace {

TEST(ConvPoolPlan, BandsCoverThePooledRowsWithinSharedMemory) {
  for (int size : {32, 64, 128, 200, 512}) {
    for (int batch : {1, 10, 150}) {
      const Dims4 x{batch, 3, size, size};
      const Dims4 y = conv_output_dims(x, 32, 3, 0);
      const ConvPoolPlan p = plan_conv_pool(x, y, 3, 0, 2, 4 * 132);
      ASSERT_TRUE(p.applies) << size << " px, batch " << batch;
      EXPECT_GE(p.rows_per_band, 1);
      EXPECT_LE(p.rows_per_band, kConvPoolMaxRows);
      EXPECT_GE(p.bands * p.rows_per_band, y.h / 2);
      EXPECT_LT((p.bands - 1) * p.rows_per_band, y.h / 2);
      EXPECT_LE(p.shared_bytes, kConvPoolSharedLimit);
      EXPECT_EQ(p.taps, 27);
      EXPECT_EQ(p.channel_group * p.groups >= 32, true);
      // The tile's rows, then 32 x 27 weights and 32 biases.
      EXPECT_EQ(p.shared_bytes,
                size_t(p.rows_per_band * 2 + 2) * 3 * size_t(size) * 4 + 32 * 28 * 4);
    }
  }
  // One image of 200 px fills 4 blocks per SM only with bands of 1 row.
  const Dims4 x{1, 3, 200, 200};
  EXPECT_EQ(plan_conv_pool(x, conv_output_dims(x, 32, 3, 0), 3, 0, 2, 528).rows_per_band, 1);
}

TEST(ConvPoolPlan, RefusesWhatTheKernelWasNotCompiledFor) {
  const Dims4 x{2, 3, 20, 20};
  EXPECT_TRUE(plan_conv_pool(x, {2, 8, 18, 18}, 3, 0, 2, 8).applies);
  EXPECT_FALSE(plan_conv_pool({2, 32, 20, 20}, {2, 8, 18, 18}, 3, 0, 2, 8).applies);  // 32 in
  EXPECT_FALSE(plan_conv_pool(x, {2, 8, 14, 14}, 7, 0, 2, 8).applies);                // kernel 7
  EXPECT_FALSE(plan_conv_pool(x, {2, 8, 18, 18}, 3, 0, 3, 8).applies);                // pool 3
  EXPECT_FALSE(plan_conv_pool(x, {2, 8, 18, 18}, 3, 0, 1, 8).applies);                // no pool
  EXPECT_FALSE(plan_conv_pool(x, {2, 8, 17, 17}, 3, 0, 2, 8).applies);                // bad dims
  EXPECT_FALSE(plan_conv_pool({1, 3, 3, 3}, {1, 8, 1, 1}, 3, 0, 2, 8).applies);       // no window
  // One band row of a very wide map does not fit beside the weights.
  EXPECT_FALSE(plan_conv_pool({1, 3, 8, 4000}, {1, 8, 6, 3998}, 3, 0, 2, 8).applies);
  // So many filters that their weights alone fill the shared memory.
  EXPECT_FALSE(plan_conv_pool(x, {2, 512, 18, 18}, 3, 0, 2, 8).applies);
}

struct ConvPoolCase {
  int n, out_c, h, w, kernel, pad, target_blocks;
};
class ConvPoolForward : public ::testing::TestWithParam<ConvPoolCase> {};

// The reference: conv (no bias), then the pool kernels' max with the bias
// and ReLU after it (pool_kernels.h), which the unfused step runs.
struct ConvPoolReference {
  std::vector<float> pooled;
  std::vector<uint8_t> argmax;
  std::vector<float> conv;
};
ConvPoolReference conv_pool_reference(const std::vector<float>& input,
                                      const std::vector<float>& weights,
                                      const std::vector<float>& bias, const Dims4& x,
                                      const Dims4& y, int kernel, int pad) {
  ConvPoolReference r;
  r.conv.resize(size_t(y.count()));
  reference::conv2d_forward(input.data(), weights.data(), nullptr, r.conv.data(), x.n, x.c, x.h,
                            x.w, y.c, kernel, pad);
  const PoolMaps maps{y.n, y.layout(false), false, 2};
  const int64_t count = int64_t(y.n) * maps.pooled().c * maps.pooled().h * maps.pooled().w;
  r.pooled.resize(size_t(count));
  r.argmax.resize(size_t(count));
  on_host::max_pool_forward(r.conv.data(), bias.data(), r.pooled.data(), r.argmax.data(), maps);
  return r;
}

TEST_P(ConvPoolForward, EqualsTheConvolutionThenThePoolKernel) {
  const ConvPoolCase cc = GetParam();
  const Dims4 x{cc.n, 3, cc.h, cc.w};
  const Dims4 y = conv_output_dims(x, cc.out_c, cc.kernel, cc.pad);
  const ConvPoolPlan plan = plan_conv_pool(x, y, cc.kernel, cc.pad, 2, cc.target_blocks);
  ASSERT_TRUE(plan.applies);
  const auto input = testing::random_vector(size_t(x.count()), 41, 0, 1);
  const auto weights = testing::random_vector(size_t(cc.out_c) * plan.taps, 42, -0.3f, 0.3f);
  const auto bias = testing::random_vector(size_t(cc.out_c), 43, -0.3f, 0.3f);
  const ConvPoolReference want = conv_pool_reference(input, weights, bias, x, y, cc.kernel, cc.pad);
  const size_t count = want.pooled.size();
  std::vector<float> pooled(count, NAN);
  std::vector<uint8_t> argmax(count, 255);
  on_host::conv_pool_forward(input.data(), weights.data(), bias.data(), pooled.data(),
                             argmax.data(), x, y, cc.kernel, cc.pad, plan);
  const MapLayout pl = PoolMaps{y.n, y.layout(false), false, 2}.pooled();
  int zeros = 0;
  for (size_t i = 0; i < count; ++i) {
    ASSERT_NEAR(pooled[i], want.pooled[i], 1e-5f) << "pooled[" << i << "]";
    zeros += pooled[i] == 0;
    // The byte names a window element whose conv value is the maximum (the
    // reference sums in another order: a near-tie may pick the other one),
    // flagged exactly where the stored value is not positive.
    const int at_position = argmax_position(argmax[i]);
    ASSERT_LT(at_position, 4) << i;
    ASSERT_EQ(argmax_passes(argmax[i]), pooled[i] > 0) << "argmax[" << i << "]";
    const MapCoords c = pl.coords(int64_t(i));
    const int yy = c.y * 2 + at_position / 2, xx = c.x * 2 + at_position % 2;
    const float at = want.conv[size_t(((int64_t(c.n) * y.c + c.c) * y.h + yy) * y.w + xx)];
    const int want_at = argmax_position(want.argmax[i]);
    const float best = want.conv[size_t(
        ((int64_t(c.n) * y.c + c.c) * y.h + c.y * 2 + want_at / 2) * y.w + c.x * 2 + want_at % 2)];
    ASSERT_NEAR(at, best, 1e-5f) << "argmax[" << i << "]";
  }
  EXPECT_GT(zeros, 0);  // the ReLU after the max clipped some windows
  EXPECT_LT(zeros, int(count));

  // Two positions a thread (kernel 3): the same patches' products in the
  // same order, the same bits.
  if (conv_pool_positions_supported(cc.kernel, 2)) {
    ConvPoolPlan two = plan;
    two.positions = 2;
    std::vector<float> pooled2(count, NAN);
    std::vector<uint8_t> argmax2(count, 255);
    on_host::conv_pool_forward(input.data(), weights.data(), bias.data(), pooled2.data(),
                               argmax2.data(), x, y, cc.kernel, cc.pad, two);
    EXPECT_EQ(pooled2, pooled);
    EXPECT_EQ(argmax2, argmax);
  }

  // Other channel groups a thread (the step times 8 and all): the same sums
  // in the same order, the same bits.
  for (int group : {1, 3, cc.out_c}) {
    const ConvPoolPlan grouped = plan.with_channel_group(group);
    EXPECT_EQ(grouped.groups * grouped.channel_group >= cc.out_c, true);
    EXPECT_LT((grouped.groups - 1) * grouped.channel_group, cc.out_c);
    std::vector<float> pooled_g(count, NAN);
    std::vector<uint8_t> argmax_g(count, 255);
    on_host::conv_pool_forward(input.data(), weights.data(), bias.data(), pooled_g.data(),
                               argmax_g.data(), x, y, cc.kernel, cc.pad, grouped);
    EXPECT_EQ(pooled_g, pooled) << "group " << group;
    EXPECT_EQ(argmax_g, argmax) << "group " << group;
  }

  // Channels last, the pooled map either way (the last block's is channels
  // first): the same tile, the same sums, the same bits where they land.
  for (bool pooled_last : {true, false}) {
    const ConvPoolPlan last =
        plan_conv_pool(x, y, cc.kernel, cc.pad, 2, cc.target_blocks, true, pooled_last);
    std::vector<float> x_last(input.size()), p_last(count, NAN);
    std::vector<uint8_t> a_last(count, 255);
    on_host::relayout(input.data(), x_last.data(), x.n, x.layout(true));
    on_host::conv_pool_forward(x_last.data(), weights.data(), bias.data(), p_last.data(),
                               a_last.data(), x, y, cc.kernel, cc.pad, last);
    const MapLayout other = PoolMaps{y.n, y.layout(true), pooled_last, 2}.pooled();
    for (int64_t i = 0; i < int64_t(count); ++i) {
      const MapCoords c = pl.coords(i);
      const int64_t j = other.at(c.n, c.c, c.y, c.x);
      ASSERT_EQ(p_last[size_t(j)], pooled[size_t(i)]) << "pooled last " << pooled_last << " " << i;
      ASSERT_EQ(a_last[size_t(j)], argmax[size_t(i)]) << i;
    }
  }

  // bf16 maps holding exact values: the fp32 instantiation's sums, rounded
  // once when stored.
  std::vector<Bf16> x16(input.size());
  std::vector<float> exact(input.size());
  for (size_t i = 0; i < input.size(); ++i) x16[i] = to_bf16(input[i]), exact[i] = to_float(x16[i]);
  std::vector<float> pooled_exact(count);
  std::vector<uint8_t> argmax_exact(count), argmax16(count);
  on_host::conv_pool_forward(exact.data(), weights.data(), bias.data(), pooled_exact.data(),
                             argmax_exact.data(), x, y, cc.kernel, cc.pad, plan);
  std::vector<Bf16> pooled16(count);
  on_host::conv_pool_forward(x16.data(), weights.data(), bias.data(), pooled16.data(),
                             argmax16.data(), x, y, cc.kernel, cc.pad, plan);
  for (size_t i = 0; i < count; ++i)
    ASSERT_EQ(pooled16[i].bits, to_bf16(pooled_exact[i]).bits) << i;
  EXPECT_EQ(argmax16, argmax_exact);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvPoolForward,
    ::testing::Values(ConvPoolCase{2, 8, 12, 12, 3, 0, 4},   // bands of several rows
                      ConvPoolCase{3, 5, 13, 11, 3, 0, 64},  // odd: an unpooled conv row/column
                      ConvPoolCase{1, 12, 9, 21, 3, 1, 2},   // 'same' padding, 2 channel groups
                      ConvPoolCase{2, 4, 16, 10, 5, 0, 1},   // kernel 5, one band an image
                      ConvPoolCase{2, 9, 15, 15, 5, 2, 7},   // kernel 5 'same', a short last band
                      ConvPoolCase{1, 32, 24, 24, 3, 0, 3}));

}  // namespace
}  // namespace histocnn::cuda
