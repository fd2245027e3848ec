// `histocnn slide` prepares the next slide (open, thumbnail, tissue) while
// the one before is scored and its outputs drawn (cli/cmd_slide.cpp). This
// runs that overlap directly: each slide's tiles.csv and summary must be the
// ones it gets alone. Also run under TSan (histocnn_concurrency_tests),
// where a race between the preparing thread and the scoring one shows.
#include <gtest/gtest.h>

#include <future>
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

TEST(SlidePrepareAhead, ASlidePreparedWhileAnotherIsScoredScoresAsAlone) {
  testing::TempDir dir;
  std::vector<std::string> slides;
  for (uint64_t seed : {1, 2}) {
    SynthSlideOptions o;
    o.width = 2400, o.height = 1600, o.pieces = 2, o.seed = seed;
    slides.push_back(dir / ("s" + std::to_string(seed) + ".tif"));
    write_synthetic_slide(slides.back(), o);
  }
  const std::vector<ModelFile> models = {small_model()};
  const PredictionSteps steps = compile_for_prediction(cpu_device(), models, 32);
  SlideOptions o;
  o.progress = false;
  o.readers = 2;
  o.batch = 32;
  o.thumbnail_side = 512;  // small maps: the test is about the overlap, not the figures
  std::vector<nlohmann::json> alone;
  std::vector<std::string> alone_tiles;
  for (const std::string& slide : slides) {
    o.output = dir / "alone";
    alone.push_back(without_times(score_slide(slide, models, steps.members, o)));
    alone_tiles.push_back(read_file(slide_output_folder(o, slide) + "/tiles.csv"));
  }
  ASSERT_GT(alone[0].value("tiles_scored", 0), 50) << alone[0].dump();
  o.output = dir / "ahead";
  std::future<PreparedSlide> next =
      std::async(std::launch::async, [&] { return prepare_slide(slides[1], models.front(), o); });
  const nlohmann::json first = score_slide(slides[0], models, steps.members, o);
  const nlohmann::json second = score_slide(slides[1], next.get(), models, steps.members, o);
  EXPECT_EQ(without_times(first), alone[0]);
  EXPECT_EQ(without_times(second), alone[1]);
  for (size_t i = 0; i < slides.size(); ++i)
    EXPECT_EQ(read_file(slide_output_folder(o, slides[i]) + "/tiles.csv"), alone_tiles[i]) << i;
}

}  // namespace
}  // namespace histocnn
