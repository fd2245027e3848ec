// The tile focus measure (data/focus.h): equal to its first-principles
// reference, zero on flat tiles, not diluted by glass, and ten times lower on
// tissue a synthetic scanner drew out of focus, at a model's scale.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <tuple>

#include "core/rng.h"
#include "data/focus.h"
#include "data/image.h"
#include "data/synth.h"
#include "data/synth_slide.h"

namespace histocnn {
namespace {

Image noise_image(int width, int height, uint64_t seed, int glass_columns = 0) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(size_t(width) * height * 3);
  Rng rng(seed);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.row(y) + 3 * x;
      if (x < glass_columns) {
        p[0] = p[1] = p[2] = uint8_t(240 + rng.next() % 4);
        continue;
      }
      p[0] = uint8_t(120 + rng.next() % 100);
      p[1] = uint8_t(40 + rng.next() % 80);
      p[2] = uint8_t(100 + rng.next() % 100);
    }
  return image;
}

TEST(Focus, EqualsTheReferenceOnTissueGlassAndTooLittleTissue) {
  for (const auto& [w, h, glass] : {std::tuple{64, 64, 0}, std::tuple{37, 23, 10},
                                    std::tuple{50, 50, 46}, std::tuple{3, 3, 0}}) {
    const Image image = noise_image(w, h, uint64_t(w * 131 + glass), glass);
    const double reference = focus_measure_reference(image);
    EXPECT_NEAR(focus_measure(image), reference, 1e-9 * (1 + reference)) << w << "x" << h;
    if (w > 3) {  // 3 x 3: one Laplacian, no variance
      EXPECT_GT(reference, 0) << w << "x" << h;
    }
  }
}

TEST(Focus, FlatAndTinyTilesReadZero) {
  Image flat = noise_image(32, 32, 1);
  for (size_t i = 0; i < flat.rgb.size(); i += 3) {
    flat.rgb[i] = 200;
    flat.rgb[i + 1] = 80;
    flat.rgb[i + 2] = 160;
  }
  EXPECT_EQ(focus_measure(flat), 0.0);
  EXPECT_EQ(focus_measure(noise_image(2, 40, 3)), 0.0);
}

// Glass is flat in or out of focus: half a tile on it leaves the measure of
// its tissue as it was (all pixels counted would halve it and more).
TEST(Focus, GlassBesideTissueDoesNotDiluteIt) {
  const Image tissue = draw_synthetic_tissue(128, 128, true, 7);
  Image half = tissue;
  for (int y = 0; y < 128; ++y)
    for (int x = 0; x < 64; ++x) {
      uint8_t* p = half.row(y) + 3 * x;
      p[0] = p[1] = p[2] = 242;
    }
  const double full = focus_measure(tissue), on_half = focus_measure(half);
  EXPECT_GT(on_half, 0.6 * full) << full << " " << on_half;
  EXPECT_LT(on_half, 1.6 * full) << full << " " << on_half;
}

// `synth --out-of-focus 4` blurs the slide's right half; tiles at a model's
// scale (256 level-0 pixels to 64 network pixels) read far lower there.
TEST(Focus, OutOfFocusTissueReadsTenTimesLowerAtTheModelsScale) {
  SynthSlideOptions o;
  o.width = 4096;
  o.height = 2048;
  o.pieces = 1;
  o.tissue = SlideTissue::malignant;
  o.out_of_focus_um = 4;
  const SyntheticSlideLayout layout(o);
  double sharp = 0, blurred = 0;
  int counted = 0;
  for (int64_t y = 768; y < 1280; y += 256) {
    const int64_t left = 1536, right = 2560;  // either side of the middle, on the piece
    ASSERT_NE(layout.label_at(left + 128, y + 128), 0);
    ASSERT_NE(layout.label_at(right + 128, y + 128), 0);
    ASSERT_FALSE(layout.out_of_focus_at(left, y));
    ASSERT_TRUE(layout.out_of_focus_at(right, y));
    sharp += focus_measure(resize_area(layout.paint(left, y, 256, 256), 64, 64));
    blurred += focus_measure(resize_area(layout.paint(right, y, 256, 256), 64, 64));
    ++counted;
  }
  EXPECT_EQ(counted, 2);
  EXPECT_GT(sharp, 10 * blurred) << sharp << " " << blurred;
  std::printf("focus at 2.48 um per network pixel: sharp %.0f, 4 um out of focus %.1f\n",
              sharp / counted, blurred / counted);
}

}  // namespace
}  // namespace histocnn
