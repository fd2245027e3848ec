// Where the CPU step runs Winograd: oneDNN's (winograd_pays) and our
// conv + ReLU + pool forward (own_winograd_pays), each on the shapes it was
// measured on. That each runs exactly where these say, and gives the
// reference's results, is test_cpu_precision.cpp's.
#include <gtest/gtest.h>

#include "backends/cpu/cpu_backend.h"
#include "nn/spec.h"

namespace histocnn {
namespace {

// Where Winograd was measured to pay (docs/results/cpu-winograd.md).
TEST(WinogradPays, PaysForWholeChannelBlocksOnLargeEnoughMaps) {
  auto conv = [](int in_c, int out_c, int side, int kernel = 3) {
    return ConvShape{in_c,     side + 2, side + 2, out_c, side, side,
                     side / 2, side / 2, kernel,   0,     2,    false};
  };
  EXPECT_TRUE(winograd_pays(conv(32, 32, 97)));    // the paper's conv2 at 200 px
  EXPECT_TRUE(winograd_pays(conv(32, 64, 46)));    // its conv3
  EXPECT_TRUE(winograd_pays(conv(32, 32, 29)));    // conv2 at 64 px
  EXPECT_FALSE(winograd_pays(conv(32, 32, 13)));   // conv2 at 32 px: slower
  EXPECT_FALSE(winograd_pays(conv(32, 64, 12)));   // conv3 at 64 px: even
  EXPECT_TRUE(winograd_pays(conv(128, 128, 14)));  // many channels: 1.5x
  EXPECT_FALSE(winograd_pays(conv(3, 32, 198)));   // 3 channels padded to 16
  EXPECT_FALSE(winograd_pays(conv(8, 16, 64)));    // a partial block
  EXPECT_FALSE(winograd_pays(conv(32, 32, 64, 5)));
}

// Where our Winograd conv + ReLU + pool forward was measured to pay
// (docs/results/cpu-winograd-small.md): smaller maps than oneDNN's.
TEST(WinogradPays, OurForwardPaysOnSmallerMapsThanOneDnns) {
  auto conv = [](int in_c, int out_c, int side, int kernel = 3) {
    return ConvShape{in_c,     side + 2, side + 2, out_c, side, side,
                     side / 2, side / 2, kernel,   0,     2,    false};
  };
  EXPECT_TRUE(own_winograd_pays(conv(32, 32, 97)));   // the paper's conv2 at 200 px
  EXPECT_TRUE(own_winograd_pays(conv(32, 32, 13)));   // conv2 at 32 px: 0.55-0.70x
  EXPECT_TRUE(own_winograd_pays(conv(32, 64, 12)));   // conv3 at 64 px: 0.55-0.85x
  EXPECT_FALSE(own_winograd_pays(conv(32, 64, 4)));   // conv3 at 32 px: one tile a row
  EXPECT_FALSE(own_winograd_pays(conv(3, 32, 30)));   // 3 channels
  EXPECT_FALSE(own_winograd_pays(conv(16, 24, 30)));  // a partial block
  EXPECT_FALSE(own_winograd_pays(conv(32, 32, 30, 5)));
}

}  // namespace
}  // namespace histocnn
