// `histocnn slide` prepares the next slide (open, thumbnail, tissue) while
// the one before is scored, and draws a scored slide's maps while the next
// one is scored (cli/cmd_slide.cpp). This runs those overlaps directly: each
// slide's files and summary must be the ones it gets alone. Also run under
// TSan (histocnn_concurrency_tests), where a race between the preparing or
// drawing thread and the scoring one shows.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/atomic_file.h"
#include "data/synth_slide.h"
#include "nn/params.h"
#include "slide/slide_run.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/ensemble.h"

namespace histocnn {
namespace {

ModelFile small_model() {
  ModelFile m;
  m.spec = parse_model_spec("conv 4 kernel=3 pool=2; dense 8; dense 2", "test");
  m.width = m.height = 16;
  m.mpp_x = m.mpp_y = 4;  // 64 µm tiles
  const NetworkShape shape = infer_shapes(m.spec, 1, m.height, m.width);
  m.params = Parameters::glorot(shape, 5);
  m.buffers = Buffers::initial(shape);
  return m;
}

// What a finished slide's summary says that does not depend on timing.
nlohmann::json without_times(nlohmann::json s) {
  s.erase("times");
  return s;
}

// Two synthetic slides, each scored alone first: the files the overlapped
// runs must reproduce.
class SlideOverlap : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t seed : {1, 2}) {
      SynthSlideOptions so;
      so.width = 2400, so.height = 1600, so.pieces = 2, so.seed = seed;
      slides_.push_back(dir_ / ("s" + std::to_string(seed) + ".tif"));
      write_synthetic_slide(slides_.back(), so);
    }
    o_.progress = false;
    o_.readers = 2;
    o_.batch = 32;
    o_.thumbnail_side = 512;  // small maps: the test is about the overlap, not the figures
    o_.output = dir_ / "alone";
    for (const std::string& slide : slides_) {
      alone_.push_back(without_times(score_slide(slide, models_, steps_.members, o_)));
      for (const char* file : kFiles)
        alone_files_.push_back(read_file(slide_output_folder(o_, slide) + "/" + file));
    }
    ASSERT_GT(alone_[0].value("tiles_scored", 0), 50) << alone_[0].dump();
  }
  // Each slide's summary and files as alone, but for the times.
  void expect_as_alone(const std::vector<nlohmann::json>& summaries) {
    for (size_t i = 0; i < slides_.size(); ++i) {
      EXPECT_EQ(without_times(summaries[i]), alone_[i]) << i;
      const std::string folder = slide_output_folder(o_, slides_[i]);
      EXPECT_EQ(without_times(nlohmann::json::parse(read_file(folder + "/summary.json"))),
                alone_[i]);
      for (size_t f = 0; f < std::size(kFiles); ++f)
        EXPECT_EQ(read_file(folder + "/" + kFiles[f]), alone_files_[i * std::size(kFiles) + f])
            << slides_[i] << " " << kFiles[f];
    }
  }

  static constexpr const char* kFiles[] = {"tiles.csv", "tiles.geojson", "heatmap-overlay.png"};
  testing::TempDir dir_;
  std::vector<std::string> slides_;
  const std::vector<ModelFile> models_ = {small_model()};
  const PredictionSteps steps_ = compile_for_prediction(cpu_device(), models_, 32);
  SlideOptions o_;
  std::vector<nlohmann::json> alone_;
  std::vector<std::string> alone_files_;
};

TEST_F(SlideOverlap, ASlidePreparedWhileAnotherIsScoredScoresAsAlone) {
  o_.output = dir_ / "ahead";
  std::future<PreparedSlide> next = std::async(
      std::launch::async, [&] { return prepare_slide(slides_[1], models_.front(), o_); });
  const nlohmann::json first = score_slide(slides_[0], models_, steps_.members, o_);
  const nlohmann::json second = score_slide(slides_[1], next.get(), models_, steps_.members, o_);
  expect_as_alone({first, second});
}

TEST_F(SlideOverlap, MapsDrawnWhileTheNextSlideIsScoredAreAsAlone) {
  o_.output = dir_ / "behind";
  UndrawnSlide first = score_slide_tiles(slides_[0], prepare_slide(slides_[0], models_.front(), o_),
                                         models_, steps_.members, o_);
  const std::string folder = slide_output_folder(o_, slides_[0]);
  // summary.json marks a finished slide (a re-run keeps its maps): not before they are drawn.
  EXPECT_FALSE(std::filesystem::exists(folder + "/summary.json"));
  EXPECT_FALSE(std::filesystem::exists(folder + "/heatmap.png"));
  std::future<nlohmann::json> drawn =
      std::async(std::launch::async, [&first] { return first.draw(); });
  const nlohmann::json second = score_slide(slides_[1], models_, steps_.members, o_);
  expect_as_alone({drawn.get(), second});
  EXPECT_TRUE(std::filesystem::exists(folder + "/heatmap.png"));
  EXPECT_FALSE(std::filesystem::exists(folder + "/.lock")) << "released once drawn";
}

// A cohort pools a slide's annotated tiles (on_annotated_tiles) once the
// slide is done, on the drawing thread: a slide whose maps never get drawn
// is never pooled.
TEST_F(SlideOverlap, AnnotatedTilesArePooledOnlyOnceTheMapsAreDrawn) {
  o_.output = dir_ / "pooled";
  o_.benign_without_annotations = true;  // every tile's truth: benign
  size_t calls = 0, tiles = 0;
  o_.on_annotated_tiles = [&](const std::vector<Tile>& t, const std::vector<Prediction>& truths,
                              double um_per_pixel) {
    ++calls;
    tiles = t.size();
    EXPECT_EQ(truths.size(), t.size());
    EXPECT_GT(um_per_pixel, 0);
  };
  {
    UndrawnSlide never = score_slide_tiles(
        slides_[0], prepare_slide(slides_[0], models_.front(), o_), models_, steps_.members, o_);
    EXPECT_TRUE(never.summary.contains("annotations"));
  }
  EXPECT_EQ(calls, 0u) << "pooled although never drawn";
  UndrawnSlide drawn = score_slide_tiles(slides_[1], prepare_slide(slides_[1], models_.front(), o_),
                                         models_, steps_.members, o_);
  EXPECT_EQ(calls, 0u);
  const nlohmann::json summary = drawn.draw();
  EXPECT_EQ(calls, 1u);
  EXPECT_EQ(tiles, alone_[1].value("tiles_scored", size_t(0)));
  EXPECT_TRUE(summary.contains("annotations"));
}

}  // namespace
}  // namespace histocnn
