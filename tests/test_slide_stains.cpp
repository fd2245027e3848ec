// A slide scored by a stain-normalising model (slide/slide_run.h's
// stain_mapping): its stains are estimated by the model's own method from
// its tissue tiles, and its tiles are read normalised.
#include <gtest/gtest.h>

#include <cmath>

#include "data/stain.h"
#include "data/synth_slide.h"
#include "slide/slide_run.h"
#include "slide/tiling.h"
#include "test_util.h"
#include "train/checkpoint.h"

namespace histocnn {
namespace {

TEST(SlideStains, TheSlidesStainsAreEstimatedByTheModelsMethodAndItsTilesNormalised) {
  testing::TempDir dir;
  SynthSlideOptions so;
  so.width = 3000, so.height = 1700, so.pieces = 2, so.mpp = 0.5;
  write_synthetic_slide(dir / "s.tif", so);
  SlideOptions options;
  options.output = dir / "out";
  const PreparedSlide p = prepare_slide(dir / "s.tif", 1.0, 1.0, 64, 64, options);
  ASSERT_FALSE(p.tiles.empty());
  const std::vector<uint8_t> pixels = sample_tile_pixels(*p.slide, p.grid, p.tiles, 64);

  ModelFile model;
  EXPECT_EQ(stain_mapping(p, model), nullptr) << "no target: tiles as read";
  StainMatrix target;
  target.he[0][0] = 0.65f, target.he[0][1] = 0.70f, target.he[0][2] = 0.29f;  // near unit
  target.he[1][0] = 0.07f, target.he[1][1] = 0.99f, target.he[1][2] = 0.11f;
  for (auto& row : target.he) {
    const float n = std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
    for (float& x : row) x /= n;
  }
  target.max_concentration[0] = 1.5f, target.max_concentration[1] = 1.0f;
  model.stain_target = target;
  std::string sources[2];
  for (const StainMethod method : {StainMethod::macenko, StainMethod::vahadane}) {
    const StainRecipe recipe{method, method == StainMethod::vahadane};
    model.trained["stain_normalize"] = recipe.name();
    const auto mapping = stain_mapping(p, model);
    ASSERT_NE(mapping, nullptr);
    const StainMatrix own = estimate_stains_with(method, pixels.data(), pixels.size() / 3, "s");
    EXPECT_EQ(mapping->source.text(), own.text()) << recipe.name();
    EXPECT_EQ(mapping->target.text(), target.text());
    EXPECT_EQ(mapping->keep_residual, recipe.keep_residual);
    sources[int(method)] = mapping->source.text();
    // Its tiles come normalised: the same tile read with the mapping differs.
    const Image plain = read_tiles(*p.slide, p.grid, p.tiles, 0, 1).front();
    const Image mapped = read_tiles(*p.slide, p.grid, p.tiles, 0, 1, mapping.get()).front();
    EXPECT_NE(plain.rgb, mapped.rgb) << recipe.name();
  }
  EXPECT_NE(sources[0], sources[1]) << "the two estimators differ on the slide's tissue";
}

}  // namespace
}  // namespace histocnn
