// What `histocnn slide` will make of a slide, from its header alone
// (slide/slide_info.h): the grid at a model's scale, the level it reads and
// how much more than the model needs, problems recorded instead of thrown,
// which files are whole slides rather than images (predict refuses them),
// and `histocnn slide-info` over a cohort folder with its exit status, JSON
// and the count of tiles on tissue that `histocnn slide` then scores.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "data/image.h"
#include "data/synth_slide.h"
#include "nn/params.h"
#include "nn/spec.h"
#include "slide/slide_info.h"
#include "test_util.h"
#include "tiff_file.h"
#include "train/checkpoint.h"

namespace histocnn {
namespace {

// A model of 2 um per network pixel, 64 x 64 input, on slides of 0.5 um:
// tiles of 256 level-0 pixels, 4 a network pixel.
SlideInspection model_at_2um() {
  SlideInspection o;
  o.model_mpp_x = o.model_mpp_y = 2.0;
  o.net_width = o.net_height = 64;
  return o;
}

void write_slide(const std::string& path, SlideLayout layout) {
  SynthSlideOptions s;
  s.width = 3000;
  s.height = 1700;
  s.pieces = 1;
  s.mpp = 0.5;
  s.layout = layout;
  write_synthetic_slide(path, s);
}

TEST(SlideInfo, APyramidAtTheModelsScaleIsReadyAndReadsTheLevelThatMatches) {
  testing::TempDir dir;
  write_slide(dir / "s.tif", SlideLayout::generic);
  const SlideInfo info = inspect_slide(dir / "s.tif", model_at_2um());
  EXPECT_TRUE(info.ready());
  EXPECT_TRUE(info.warnings.empty());
  EXPECT_EQ(info.format, "generic-tiff");
  EXPECT_EQ(info.reader, "direct-tiff");
  EXPECT_EQ(info.name, "s");
  EXPECT_EQ(info.width, 3000);
  EXPECT_NEAR(info.mpp_x, 0.5, 1e-6);
  ASSERT_EQ(info.levels.size(), 4u);
  ASSERT_TRUE(info.grid.has_value());
  EXPECT_DOUBLE_EQ(info.grid->tile_width, 256.0);
  EXPECT_EQ(info.grid->level, 2);  // downsample 4: one level pixel a network pixel
  EXPECT_EQ(info.grid->read_width, 64);
  EXPECT_EQ(info.grid->columns, 12);  // ceil(3000 / 256)
  EXPECT_EQ(info.grid->rows, 7);      // ceil(1700 / 256)
  EXPECT_NEAR(info.read_excess, 1.0, 1e-9);
  EXPECT_GT(info.bytes, 0u);
  const nlohmann::json j = slide_info_json(info);
  EXPECT_EQ(j["ready"], true);
  EXPECT_EQ(j["levels"].size(), 4u);
  EXPECT_EQ(j["tiles"]["level"], 2);
  EXPECT_NE(slide_info_text(info).find("read from level 2 at 64 x 64, a grid of 12 x 7"),
            std::string::npos)
      << slide_info_text(info);
}

TEST(SlideInfo, ALevelFarFinerThanTheModelNeedsIsFlaggedAsSlow) {
  testing::TempDir dir;
  write_slide(dir / "s.ome.tif", SlideLayout::ome);
  SlideInspection o = model_at_2um();
  o.reader = SlideReader::openslide;  // OpenSlide sees level 0 alone
  const SlideInfo info = inspect_slide(dir / "s.ome.tif", o);
  EXPECT_TRUE(info.ready());
  EXPECT_EQ(info.format, "ome-tiff");
  ASSERT_EQ(info.levels.size(), 1u);
  EXPECT_EQ(info.grid->level, 0);
  EXPECT_NEAR(info.read_excess, 16.0, 1e-9);
  ASSERT_EQ(info.warnings.size(), 1u);  // 3000 pixels: not large enough to flag its thumbnail
  EXPECT_EQ(info.warnings[0],
            "each tile is read from level 0 at 16x the pixels the model needs: the pyramid has "
            "no level near 2 um per pixel");
  // Read directly, the SubIFDs are its pyramid: nothing to flag.
  o.reader = SlideReader::automatic;
  EXPECT_TRUE(inspect_slide(dir / "s.ome.tif", o).warnings.empty());
}

TEST(SlideInfo, ProblemsAreRecordedNotThrown) {
  testing::TempDir dir;
  Image image;
  image.width = 300;
  image.height = 200;
  image.rgb.assign(size_t(300) * 200 * 3, 200);
  save_image(dir / "plain.png", image);
  // A plain image records no scale...
  SlideInfo info = inspect_slide(dir / "plain.png", model_at_2um());
  EXPECT_FALSE(info.ready());
  ASSERT_EQ(info.problems.size(), 1u);
  EXPECT_EQ(info.problems[0], "the slide does not record its microns per pixel: give --mpp");
  EXPECT_FALSE(info.grid.has_value());
  // ...which --mpp gives; then a 256-pixel tile does not fit 300 x 200.
  SlideInspection o = model_at_2um();
  o.mpp = 0.5;
  info = inspect_slide(dir / "plain.png", o);
  ASSERT_EQ(info.problems.size(), 1u);
  EXPECT_NE(info.problems[0].find("a tile of 256.0x256.0 slide pixels does not fit"),
            std::string::npos)
      << info.problems[0];
  o.model_mpp_x = o.model_mpp_y = 0.5;  // 64-pixel tiles fit
  EXPECT_TRUE(inspect_slide(dir / "plain.png", o).ready());
  // Missing and broken files.
  info = inspect_slide(dir / "missing.svs", o);
  ASSERT_EQ(info.problems.size(), 1u);
  EXPECT_EQ(info.problems[0], (dir / "missing.svs") + ": no such slide file");
  EXPECT_NE(slide_info_text(info).find(": not read\n"), std::string::npos);
  write_file_atomically(dir / "broken.tif", "II* and then not a TIFF");
  EXPECT_FALSE(inspect_slide(dir / "broken.tif", o).ready());
}

TEST(SlideInfo, WholeSlidesAreToldFromImagesToHold) {
  testing::TempDir dir;
  SynthSlideOptions o;
  o.width = 9000;  // over 8192, with a pyramid
  o.height = 600;
  o.pieces = 1;
  write_synthetic_slide(dir / "wide.tif", o);
  EXPECT_TRUE(looks_like_whole_slide(dir / "wide.tif"));
  o.width = 3000;  // a pyramid, but small enough to hold
  write_synthetic_slide(dir / "small.tif", o);
  EXPECT_FALSE(looks_like_whole_slide(dir / "small.tif"));
  Image strip;  // wide, but one page
  strip.width = 9000;
  strip.height = 4;
  strip.rgb.assign(size_t(9000) * 4 * 3, 128);
  testing::write_tiff(dir / "strip.tif", strip, false);
  EXPECT_FALSE(looks_like_whole_slide(dir / "strip.tif"));
  save_image(dir / "image.png", strip);
  EXPECT_FALSE(looks_like_whole_slide(dir / "image.png"));
  // A vendor's extension says it, whatever the bytes.
  write_file_atomically(dir / "case.SVS", "not read");
  EXPECT_TRUE(looks_like_whole_slide(dir / "case.SVS"));
  EXPECT_TRUE(looks_like_whole_slide(dir / "case.mrxs"));
  EXPECT_FALSE(looks_like_whole_slide(dir / "missing.tif"));
}

TEST(SlideInfoCli, ACohortFolderIsCheckedAndTheExitStatusSaysIfAllAreReady) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "cohort/a");
  write_slide(dir / "cohort/a/one.tif", SlideLayout::generic);
  write_slide(dir / "cohort/two.ome.tif", SlideLayout::ome);
  testing::CommandResult r =
      testing::run("slide-info " + (dir / "cohort") + " --json " + (dir / "info.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("histocnn slide-info: 2 slides in " + (dir / "cohort") + " and below"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("two.ome.tif: ome-tiff (direct-tiff), 3000 x 1700 pixels at 0.5 x 0.5 "
                          "um (1.5 x 0.8 mm), 4 levels"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("2 slides: 2 ready for histocnn slide\n"), std::string::npos) << r.output;
  const auto json = nlohmann::json::parse(read_file(dir / "info.json"));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[1]["name"], "two");
  EXPECT_EQ(json[1]["format"], "ome-tiff");
  // A slide without a scale: status 1, and the count says so.
  r = testing::run("slide-info " + (dir / "cohort") + " " + (dir / "nothing.svs"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("3 slides: 2 ready for histocnn slide, 1 with a problem (above)"),
            std::string::npos)
      << r.output;
  // With a model (2 um per network pixel, 16 x 16): its grid; --mpp-model
  // overrides its scale.
  ModelFile model;
  model.spec = parse_model_spec("conv 4 kernel=3 pool=2; dense 6; dropout 0.5; dense 2", "t");
  model.width = model.height = 16;
  model.crop = "whole";
  model.mpp_x = model.mpp_y = 2.0;  // 64 level-0 pixels a tile
  model.params = Parameters::glorot(infer_shapes(model.spec, 8, 16, 16), 11);
  save_model_file(dir / "m.safetensors", model);
  r = testing::run("slide-info " + (dir / "cohort/a/one.tif") + " -m " + (dir / "m.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("tiles of 64.0 x 64.0 pixels (32 um), read from level 2 at 16 x 16, a "
                          "grid of 47 x 27"),
            std::string::npos)
      << r.output;
  r = testing::run("slide-info " + (dir / "cohort/a/one.tif") + " -m " + (dir / "m.safetensors") +
                   " --mpp-model 4");
  EXPECT_NE(r.output.find("tiles of 128.0 x 128.0 pixels (64 um), read from level 3"),
            std::string::npos)
      << r.output;
  // --tissue counts the tiles `histocnn slide` scores.
  r = testing::run("slide-info " + (dir / "cohort/a/one.tif") + " -m " + (dir / "m.safetensors") +
                   " --tissue --json " + (dir / "tissue.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  const int64_t on_tissue =
      nlohmann::json::parse(read_file(dir / "tissue.json"))[0]["tiles"]["on_tissue"];
  EXPECT_GT(on_tissue, 20);
  EXPECT_LT(on_tissue, 47 * 27);
  EXPECT_NE(r.output.find(std::to_string(on_tissue) + " tiles on tissue ("), std::string::npos)
      << r.output;
  r = testing::run("slide -m " + (dir / "m.safetensors") + " " + (dir / "cohort/a/one.tif") +
                   " -o " + (dir / "scored") + " --threads 1 --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "scored/one/summary.json"))["tiles_scored"],
            on_tissue);
  r = testing::run("slide-info " + (dir / "cohort") + " --tissue");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--tissue: give the model too (-m MODEL)"), std::string::npos)
      << r.output;
  // predict points a whole slide here rather than scoring a few crops of it.
  write_file_atomically(dir / "case.svs", "a slide's name is enough");
  r = testing::run("predict -m " + (dir / "m.safetensors") + " " + (dir / "case.svs"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("case.svs: a whole-slide image; score it with `histocnn slide`"),
            std::string::npos)
      << r.output;
  // The JSON never replaces a slide; --mpp-model needs a model.
  r = testing::run("slide-info " + (dir / "cohort/two.ome.tif") + " --json " +
                   (dir / "cohort/two.ome.tif"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("would overwrite a slide"), std::string::npos) << r.output;
  r = testing::run("slide-info " + (dir / "cohort") + " --mpp-model 2");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--mpp-model: give the model too (-m MODEL)"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace histocnn
