// The many-channel pooled weight-gradient kernel (pooled_wgrad_kernels.h) on
// the host, in its own thread structure (pooled_wgrad_on_host.h): its plan,
// and its weight gradient against the reference's from the scattered
// gradient, in either layout, fp32 and bf16, 1, 2 or 4 output channels a
// warp.
#include <gtest/gtest.h>

#include <cmath>

#include "cuda_kernels_on_host.h"
#include "nn/reference.h"
#include "pooled_terms_on_host.h"
#include "pooled_wgrad_on_host.h"
#include "test_util.h"

namespace histocnn::cuda {
namespace {

// The paper's conv2 and conv3 at every size and batch of the grid: tiles
// that cover the pooled map once, within shared memory, in bank-free planes.
TEST(PooledWgradPlan, TilesCoverThePooledMapWithinSharedMemory) {
  for (int size : {32, 64, 128, 180, 200}) {
    for (int batch : {1, 10, 50, 150}) {
      for (auto [in_c, out_c, h] : {std::tuple{32, 32, size / 2}, std::tuple{32, 64, size / 4}}) {
        for (int outs : {1, 2, 4}) {
          const Dims4 x{batch, in_c, h, h};
          const Dims4 y = conv_output_dims(x, out_c, 3, 1);
          const PooledWgradPlan p = plan_pooled_wgrad(x, y, 3, 1, 2, outs, 4 * 132);
          const std::string at = std::to_string(size) + " px, batch " + std::to_string(batch) +
                                 ", " + std::to_string(out_c) + " out, " + std::to_string(outs);
          ASSERT_TRUE(p.applies) << at;
          const int ph = y.h / 2, pw = y.w / 2;
          EXPECT_LE(p.shared_bytes, kPooledWgradSharedLimit) << at;
          EXPECT_EQ(p.plane % 2, 1) << at;
          EXPECT_GE(p.plane, p.tile_h * p.tile_w) << at;
          EXPECT_EQ(p.tile_h, p.tile_rows * 2 + 2);
          EXPECT_EQ(p.tile_w, p.tile_cols * 2 + 2);
          EXPECT_GE(p.column_chunks * p.tile_cols, pw) << at;
          EXPECT_LT((p.column_chunks - 1) * p.tile_cols, pw) << at;
          const int tiles = (ph + p.tile_rows - 1) / p.tile_rows;
          EXPECT_GE(p.bands * p.band_tiles, tiles) << at;
          EXPECT_LT((p.bands - 1) * p.band_tiles, tiles) << at;
          EXPECT_GE(p.out_groups * p.outs_per_block(), out_c) << at;
          EXPECT_LT((p.out_groups - 1) * p.outs_per_block(), out_c) << at;
          EXPECT_EQ(p.channel_groups, 1);
          EXPECT_EQ(p.taps, in_c * 9);
          EXPECT_EQ(p.workspace_bytes,
                    size_t(batch) * p.bands * p.column_chunks * out_c * in_c * 9 * 4)
              << at;
          // The bands aim at the target (at one output channel a warp, the
          // same bands for every variant): more only where one band per
          // image already exceeds it.
          const int64_t per_band = int64_t(batch) * p.column_chunks * ((out_c + 7) / 8);
          if (p.bands > 1) {
            EXPECT_LT(per_band * (p.bands - 1), 4 * 132 + per_band) << at;
          }
        }
      }
    }
  }
}

TEST(PooledWgradPlan, RefusesWhatTheKernelsWereNotCompiledFor) {
  const Dims4 x{2, 32, 20, 20};
  const Dims4 y = conv_output_dims(x, 32, 3, 1);
  EXPECT_TRUE(plan_pooled_wgrad(x, y, 3, 1, 2, 1, 8).applies);
  EXPECT_FALSE(plan_pooled_wgrad(x, y, 3, 1, 1, 1, 8).applies) << "pool 1: nothing pooled";
  EXPECT_FALSE(plan_pooled_wgrad(x, y, 3, 1, 9, 1, 8).applies) << "pool 9: argmax past a byte";
  EXPECT_FALSE(plan_pooled_wgrad(x, y, 3, 1, 2, 3, 8).applies) << "3 outputs a warp";
  const Dims4 y5 = conv_output_dims(x, 32, 5, 2);
  EXPECT_TRUE(plan_pooled_wgrad(x, y5, 5, 2, 2, 2, 8).applies);
  EXPECT_FALSE(plan_pooled_wgrad(x, y5, 5, 2, 2, 4, 8).applies) << "kernel 5, 4 outputs a warp";
  const Dims4 y7 = conv_output_dims(x, 32, 7, 3);
  EXPECT_FALSE(plan_pooled_wgrad(x, y7, 7, 3, 2, 1, 8).applies) << "kernel 7";
  EXPECT_FALSE(plan_pooled_wgrad(x, y, 3, 0, 2, 1, 8).applies) << "dims disagree with the padding";
  const Dims4 one{1, 32, 1, 1};
  EXPECT_FALSE(plan_pooled_wgrad(one, conv_output_dims(one, 8, 3, 1), 3, 1, 2, 1, 8).applies)
      << "no whole window";
}

struct PooledCase {
  int n, in_c, out_c, h, w, kernel, pad, pool, target_blocks;
};
std::ostream& operator<<(std::ostream& os, const PooledCase& c) {
  return os << c.n << "x" << c.in_c << "x" << c.h << "x" << c.w << " -> " << c.out_c << " k"
            << c.kernel << " pad " << c.pad << " pool " << c.pool << " target " << c.target_blocks;
}
class PooledWgrad : public ::testing::TestWithParam<PooledCase> {};

// The conv's raw output pooled with its bias and ReLU after the max (as the
// step does), a random pooled gradient; the weight gradient from the pooled
// gradient and argmax (flagged where the pooled value is not positive) equals the reference's from
// the full conv-output gradient that pool_relu_backward scatters.
TEST_P(PooledWgrad, EqualsTheReferenceFromTheScatteredGradient) {
  const PooledCase k = GetParam();
  const Dims4 x{k.n, k.in_c, k.h, k.w};
  const on_host::PooledTerms terms =
      on_host::make_pooled_terms(x, k.out_c, k.kernel, k.pad, k.pool, 42);
  const Dims4 y = terms.y;
  const auto input = on_host::exact_bf16(testing::random_vector(size_t(x.count()), 41, 0, 1));
  const auto& d_pooled = terms.d_pooled;
  const auto& argmax = terms.argmax;
  ASSERT_GT(terms.flagged_windows(), 0u) << "no flagged window: the flag goes untested";
  const auto& d_act = terms.d_act;
  const size_t dw_count = size_t(k.out_c) * k.in_c * k.kernel * k.kernel;
  const auto weights = testing::random_vector(dw_count, 45);
  std::vector<float> want(dw_count);
  reference::conv2d_backward(input.data(), weights.data(), d_act.data(), nullptr, want.data(),
                             nullptr, x.n, x.c, x.h, x.w, k.out_c, k.kernel, k.pad);

  std::vector<float> got;
  for (int outs : {1, 2, 4}) {
    const PooledWgradPlan p =
        plan_pooled_wgrad(x, y, k.kernel, k.pad, k.pool, outs, k.target_blocks);
    if (!pooled_wgrad_outs_supported(k.kernel, outs)) continue;
    ASSERT_TRUE(p.applies) << outs;
    std::vector<float> dw(dw_count, NAN);
    on_host::pooled_wgrad(input.data(), d_pooled.data(), argmax.data(), dw.data(), x, y, false, p);
    if (got.empty()) {
      got = dw;
      for (size_t i = 0; i < dw_count; ++i)
        ASSERT_NEAR(got[i], want[i], 1e-4 * std::max(1.0f, std::abs(want[i]))) << "dW[" << i << "]";
    } else {
      // Each (output, input) channel's sums take the same terms in the
      // same order, whichever warp holds them: the same bits.
      EXPECT_EQ(dw, got) << outs << " outputs a warp";
    }
  }

  // Channels last, the pooled maps either way (the last block's are
  // channels first): the same tile, the same terms, the same bits.
  for (bool pooled_last : {true, false}) {
    const PooledWgradPlan p =
        plan_pooled_wgrad(x, y, k.kernel, k.pad, k.pool, 1, k.target_blocks, true);
    const MapLayout other = PoolMaps{y.n, y.layout(true), pooled_last, k.pool}.pooled();
    std::vector<float> x_last(input.size()), dw(dw_count, NAN);
    on_host::relayout(input.data(), x_last.data(), x.n, x.layout(true));
    const on_host::PooledTermsIn moved = on_host::relaid_pooled_terms(terms, other);
    const auto& dp_last = moved.d_pooled;
    const auto& a_last = moved.argmax;
    on_host::pooled_wgrad(x_last.data(), dp_last.data(), a_last.data(), dw.data(), x, y,
                          pooled_last, p);
    EXPECT_EQ(dw, got) << "channels last, pooled maps channels "
                       << (pooled_last ? "last" : "first");
  }

  // bf16 maps holding the same (exact) values: the fp32 instantiation's bits.
  const PooledWgradPlan p = plan_pooled_wgrad(x, y, k.kernel, k.pad, k.pool, 1, k.target_blocks);
  const auto x16 = on_host::to_bf16_vector(input), dp16 = on_host::to_bf16_vector(d_pooled);
  std::vector<float> dw16(dw_count, NAN);
  on_host::pooled_wgrad(x16.data(), dp16.data(), argmax.data(), dw16.data(), x, y, false, p);
  EXPECT_EQ(dw16, got);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PooledWgrad,
    ::testing::Values(PooledCase{2, 32, 32, 12, 12, 3, 1, 2, 4},     // conv2's shape, small
                      PooledCase{3, 40, 20, 13, 11, 3, 1, 2, 1000},  // 2 channel groups, odd map
                      PooledCase{1, 32, 8, 40, 150, 3, 1, 2,
                                 64},  // column chunks, bands, a short last tile
                      PooledCase{2, 8, 9, 10, 9, 5, 2, 2, 3},      // kernel 5, few channels
                      PooledCase{2, 16, 8, 14, 16, 3, 0, 3, 5}));  // 3 x 3 windows, no padding

}  // namespace
}  // namespace histocnn::cuda
