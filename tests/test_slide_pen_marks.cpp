// Marker-pen strokes on a slide (data/pen_ink.h) end to end: a synthetic
// slide circled in ink is scored without the ring's tiles, says how much
// ink it left out, and keeps them only when asked.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli_fixture.h"
#include "core/atomic_file.h"
#include "data/synth_slide.h"
#include "tiles_csv.h"

namespace histocnn {
namespace {

class PenMarks : public Cli {
 protected:
  static std::string at(const std::string& name) { return out(name); }
};

// Share of the level-0 rectangle under the synthetic slide's pen rings
// (sampled every 8 pixels).
double ink_share(const SyntheticSlideLayout& layout, double x, double y, double w, double h) {
  int ink = 0, all = 0;
  for (double py = y + 4; py < y + h; py += 8)
    for (double px = x + 4; px < x + w; px += 8) {
      ink += layout.ink_at(int64_t(px), int64_t(py)) != nullptr;
      ++all;
    }
  return all ? double(ink) / all : 0;
}

TEST_F(PenMarks, StrokesAreNotScoredAsTissueUnlessAsked) {
  SynthSlideOptions o;
  o.width = 6000;
  o.height = 4000;
  o.pieces = 2;
  o.seed = 5;
  o.pen_marks = true;
  const SyntheticSlideLayout layout(o);
  for (const char* name : {"pen", "clean"}) {
    const std::string pen = std::string(name) == "pen" ? " --pen-marks" : "";
    ASSERT_EQ(run(std::string("synth --slide ") + at(std::string(name) + "/s.tif") +
                  " --slide-size 6000x4000 --pieces 2 --seed 5" + pen)
                  .status,
              0);
  }
  ASSERT_EQ(run(train_args() + " --epochs 1 -o " + at("m")).status, 0);
  const std::string model = at("m/model.safetensors");
  const std::string flags = " --threads 1 --no-progress";
  const CommandResult r =
      run("slide " + model + " " + at("pen/s.tif") + " -o " + at("pen/out") + flags);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(
      run("slide " + model + " " + at("clean/s.tif") + " -o " + at("clean/out") + flags).status, 0);
  const CommandResult kept = run("slide " + model + " " + at("pen/s.tif") + " -o " + at("kept") +
                                 flags + " --no-pen-filter");
  ASSERT_EQ(kept.status, 0) << kept.output;
  EXPECT_EQ(kept.output.find("pen ink"), std::string::npos) << kept.output;

  // The ink found is the ring drawn, less where it crosses tissue at a
  // blend the palette does not hold.
  const double ring_mm2 = ink_share(layout, 0, 0, double(o.width), double(o.height)) *
                          double(o.width * o.height) * o.mpp * o.mpp / 1e6;
  const auto pen = nlohmann::json::parse(read_file(at("pen/out/s/summary.json")));
  const auto clean = nlohmann::json::parse(read_file(at("clean/out/s/summary.json")));
  const auto keep = nlohmann::json::parse(read_file(at("kept/s/summary.json")));
  EXPECT_NEAR(pen["pen_ink_mm2"].get<double>(), ring_mm2, 0.25 * ring_mm2) << pen.dump();
  char said[160];
  std::snprintf(said, sizeof said, ": %.2f mm² of pen ink left out of the tissue",
                pen["pen_ink_mm2"].get<double>());
  EXPECT_NE(
      r.output.find(at("pen/s.tif") + said + " (grey in tissue.png; --no-pen-filter keeps it)\n"),
      std::string::npos)
      << r.output;
  EXPECT_EQ(clean["pen_ink_mm2"], 0.0);
  EXPECT_EQ(keep["pen_ink_mm2"], 0.0);
  EXPECT_EQ(keep["pen_filter"], false);
  // No tile three quarters under ink is scored, and hardly any half; without
  // the filter the ring's tiles are. (Ink over the darkest tissue leaves
  // the palette: where the ring crosses tissue a tile may show enough.)
  auto under_ink = [&](const std::string& csv, double share) {
    int n = 0;
    for (const testing::TileRow& t : testing::read_tile_rows(csv))
      n += ink_share(layout, t.x, t.y, t.width, t.width) > share;
    return n;
  };
  EXPECT_EQ(under_ink(at("pen/out/s/tiles.csv"), 0.75), 0);
  EXPECT_LE(under_ink(at("pen/out/s/tiles.csv"), 0.5), 2);
  EXPECT_GT(under_ink(at("kept/s/tiles.csv"), 0.75), 20);
  // Tissue under the ring's crossings is hidden, so a little less is scored.
  const int pen_tiles = pen["tiles_on_tissue"], clean_tiles = clean["tiles_on_tissue"];
  EXPECT_LE(pen_tiles, clean_tiles);
  EXPECT_GT(pen_tiles, clean_tiles * 9 / 10);
  // A run continues only with the same filter.
  const CommandResult other = run("slide " + model + " " + at("pen/s.tif") + " -o " +
                                  at("pen/out") + flags + " --no-pen-filter");
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("scored before with another pen_filter (true, now false)"),
            std::string::npos)
      << other.output;
}

}  // namespace
}  // namespace histocnn
