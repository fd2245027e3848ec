// The pooled data-gradient kernel (pooled_dgrad_kernels.h) on the host, lane
// by lane as its grid runs (pooled_dgrad_on_host.h): its plan, and its data
// gradient against the reference's from the scattered gradient, 'valid' and
// 'same' convolutions, kernel 3 and 5, either layout, fp32 and bf16, both
// tile sizes (the same bits).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>

#include "nn/reference.h"
#include "pooled_dgrad_on_host.h"
#include "pooled_terms_on_host.h"
#include "test_util.h"

namespace histocnn::cuda {
namespace {

// The paper's conv2 and conv3 ('valid', 2x2 pools) at every size and batch of
// the grid: tiles that cover the input map once, a grid within CUDA's limits.
TEST(PooledDgradPlan, TilesCoverTheInputMap) {
  for (int size : {32, 64, 128, 180, 200}) {
    const int conv2_in = (size - 2) / 2, conv3_in = (conv2_in - 2) / 2;
    for (int batch : {1, 10, 50, 150, 1800}) {
      for (auto [in_c, out_c, h] : {std::tuple{32, 32, conv2_in}, std::tuple{32, 64, conv3_in}}) {
        for (int tile : {2, 4}) {
          const Dims4 x{batch, in_c, h, h};
          const Dims4 y = conv_output_dims(x, out_c, 3, 0);
          const PooledDgradPlan p = plan_pooled_dgrad(x, y, 3, 0, 2, tile);
          const std::string at = std::to_string(size) + " px, batch " + std::to_string(batch) +
                                 ", tile " + std::to_string(tile);
          ASSERT_TRUE(p.applies) << at;
          EXPECT_EQ(p.tile_px(), 2 * tile) << at;
          EXPECT_GE(p.tiles_y * p.tile_px(), h) << at;
          EXPECT_LT((p.tiles_y - 1) * p.tile_px(), h) << at;
          EXPECT_GE(p.blocks_x() * kPooledDgradWarps * p.tile_px(), h) << at;
          EXPECT_LT((p.blocks_x() - 1) * kPooledDgradWarps * p.tile_px(), h) << at;
          EXPECT_EQ(p.channel_groups, 1) << at;
          EXPECT_EQ(p.out_c, out_c) << at;
        }
      }
    }
  }
}

TEST(PooledDgradPlan, RefusesWhatTheKernelWasNotCompiledFor) {
  const Dims4 x{2, 32, 20, 20};
  const Dims4 same = conv_output_dims(x, 16, 3, 1), valid = conv_output_dims(x, 16, 3, 0);
  EXPECT_TRUE(plan_pooled_dgrad(x, same, 3, 1, 2, 2).applies);
  EXPECT_TRUE(plan_pooled_dgrad(x, valid, 3, 0, 2, 4).applies);
  EXPECT_FALSE(plan_pooled_dgrad(x, same, 3, 1, 3, 2).applies) << "3x3 pools";
  EXPECT_FALSE(plan_pooled_dgrad(x, same, 3, 1, 1, 2).applies) << "no pool";
  EXPECT_FALSE(plan_pooled_dgrad(x, same, 3, 1, 2, 3).applies) << "tiles of 3 windows";
  EXPECT_FALSE(plan_pooled_dgrad(x, valid, 3, 1, 2, 2).applies) << "dims disagree with the pad";
  const Dims4 pad2 = conv_output_dims(x, 16, 3, 2);
  EXPECT_FALSE(plan_pooled_dgrad(x, pad2, 3, 2, 2, 2).applies) << "pad 2 with kernel 3";
  const Dims4 k7 = conv_output_dims(x, 16, 7, 3);
  EXPECT_FALSE(plan_pooled_dgrad(x, k7, 7, 3, 2, 2).applies) << "kernel 7";
  const Dims4 huge{70000, 32, 8, 8};
  EXPECT_FALSE(plan_pooled_dgrad(huge, conv_output_dims(huge, 8, 3, 1), 3, 1, 2, 2).applies)
      << "grid z past 65535";
}

struct DgradCase {
  int n, in_c, out_c, h, w, kernel, pad;
};
std::ostream& operator<<(std::ostream& os, const DgradCase& c) {
  return os << c.n << "x" << c.in_c << "x" << c.h << "x" << c.w << " -> " << c.out_c << " k"
            << c.kernel << " pad " << c.pad;
}
class PooledDgrad : public ::testing::TestWithParam<DgradCase> {};

// The weights in KRSC (the step's channels-last filters).
std::vector<float> krsc(const std::vector<float>& oihw, const DgradCase& k) {
  std::vector<float> out(oihw.size());
  on_host::relayout(oihw.data(), out.data(), k.out_c, MapLayout{k.in_c, k.kernel, k.kernel, true});
  return out;
}

// The data gradient from the pooled gradient and argmax (flagged where the
// pooled value is not positive) equals the
// reference's from the full conv-output gradient that pool_relu_backward
// scatters; every element of dx is written (it starts as NaN), the rows and
// columns past the last whole window included.
TEST_P(PooledDgrad, EqualsTheReferenceFromTheScatteredGradient) {
  const DgradCase k = GetParam();
  const Dims4 x{k.n, k.in_c, k.h, k.w};
  const on_host::PooledTerms terms =
      on_host::make_pooled_terms(x, k.out_c, k.kernel, k.pad, 2, 52, 7);
  const Dims4 y = terms.y;
  ASSERT_GT(terms.flagged_windows(), 0u) << "no flagged window: the flag goes untested";
  const size_t w_count = size_t(k.out_c) * k.in_c * k.kernel * k.kernel;
  const auto weights = on_host::exact_bf16(testing::random_vector(w_count, 55));
  std::vector<float> zero_x(size_t(x.count()), 0.0f), want(size_t(x.count())), dw(w_count),
      db(size_t(k.out_c));
  reference::conv2d_backward(zero_x.data(), weights.data(), terms.d_act.data(), want.data(),
                             dw.data(), db.data(), x.n, x.c, x.h, x.w, k.out_c, k.kernel, k.pad);

  std::vector<float> got;
  for (int tile : {2, 4}) {
    const PooledDgradPlan p = plan_pooled_dgrad(x, y, k.kernel, k.pad, 2, tile);
    ASSERT_TRUE(p.applies) << tile;
    std::vector<float> dx(size_t(x.count()), NAN);
    on_host::pooled_dgrad(terms.d_pooled.data(), terms.argmax.data(), weights.data(), dx.data(), x,
                          y, false, p);
    if (got.empty()) {
      got = dx;
      for (size_t i = 0; i < dx.size(); ++i)
        ASSERT_NEAR(got[i], want[i], 1e-5 * std::max(1.0f, std::abs(want[i]))) << "dx[" << i << "]";
    } else {
      // Each element's terms in the same order whatever the tile: the same bits.
      EXPECT_EQ(dx, got) << "tiles of " << tile << " windows";
    }
  }

  // Channels last (x, dx, KRSC filters), the pooled maps either way (the
  // last block's are channels first): the same terms in the same order.
  const auto w_last = krsc(weights, k);
  for (bool pooled_last : {true, false}) {
    const PooledDgradPlan p = plan_pooled_dgrad(x, y, k.kernel, k.pad, 2, 4, true);
    const on_host::PooledTermsIn moved =
        on_host::relaid_pooled_terms(terms, PoolMaps{y.n, y.layout(true), pooled_last, 2}.pooled());
    std::vector<float> dx_last(size_t(x.count()), NAN), dx(size_t(x.count()));
    on_host::pooled_dgrad(moved.d_pooled.data(), moved.argmax.data(), w_last.data(), dx_last.data(),
                          x, y, pooled_last, p);
    on_host::relayout(dx_last.data(), dx.data(), x.n, x.layout(false));
    EXPECT_EQ(dx, got) << "channels last, pooled maps channels "
                       << (pooled_last ? "last" : "first");
  }

  // bf16 maps and weights holding the same (exact) values: the fp32 sums,
  // rounded once.
  const PooledDgradPlan p = plan_pooled_dgrad(x, y, k.kernel, k.pad, 2, 2);
  const auto dp16 = on_host::to_bf16_vector(terms.d_pooled), w16 = on_host::to_bf16_vector(weights);
  std::vector<Bf16> dx16(size_t(x.count()), to_bf16(NAN));
  on_host::pooled_dgrad(dp16.data(), terms.argmax.data(), w16.data(), dx16.data(), x, y, false, p);
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(dx16[i].bits, to_bf16(got[i]).bits) << "dx[" << i << "]";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PooledDgrad,
    ::testing::Values(DgradCase{2, 32, 32, 13, 13, 3, 0},  // conv2's shape, small ('valid')
                      DgradCase{2, 32, 64, 12, 12, 3, 0},  // conv3's: 64 output channels
                      DgradCase{3, 40, 20, 13, 11, 3, 1},  // 2 channel groups, odd map, 'same'
                      DgradCase{1, 6, 8, 37, 45, 3, 0},    // few channels, many tiles, part rows
                      DgradCase{2, 8, 9, 10, 9, 5, 2},     // kernel 5, 'same'
                      DgradCase{2, 5, 7, 15, 16, 5, 0}));  // kernel 5, 'valid'

}  // namespace
}  // namespace histocnn::cuda
