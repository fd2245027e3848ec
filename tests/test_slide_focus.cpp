// Out-of-focus tissue on a slide (data/focus.h) end to end: a synthetic slide
// whose right half a scanner left out of focus reads far less sharp there in
// tiles.csv, and --min-focus keeps those tiles in tiles.csv but out of the
// slide's statistics and maps, on a re-run of the same scores.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_fixture.h"
#include "core/atomic_file.h"
#include "tiles_csv.h"

namespace histocnn {
namespace {

using testing::read_tile_rows;
using testing::TileRow;

class SlideFocus : public Cli {
 protected:
  static std::string at(const std::string& name) { return out(name); }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

TEST_F(SlideFocus, BlurredTilesAreMeasuredAndSetAsideOnlyWhenAsked) {
  ASSERT_EQ(run("synth --slide " + at("s.tif") +
                " --slide-size 6000x4000 --pieces 2 --seed 5 --out-of-focus 4")
                .status,
            0);
  ASSERT_EQ(run(train_args() + " --epochs 1 -o " + at("m")).status, 0);
  const std::string slide = "slide " + at("m/model.safetensors") + " " + at("s.tif") + " -o " +
                            at("out") + " --threads 1 --no-progress";
  const CommandResult all = run(slide);
  ASSERT_EQ(all.status, 0) << all.output;
  EXPECT_EQ(all.output.find("out of focus"), std::string::npos) << all.output;

  // Blocks from x = 3072 on are blurred; the tiles wholly on either side.
  const std::vector<TileRow> rows = read_tile_rows(at("out/s/tiles.csv"));
  std::vector<double> sharp, blurred;
  for (const TileRow& r : rows) {
    if (r.x + r.width <= 3072) sharp.push_back(r.focus);
    if (r.x >= 3072) blurred.push_back(r.focus);
  }
  ASSERT_GT(sharp.size(), 30u);
  ASSERT_GT(blurred.size(), 30u);
  EXPECT_GT(median(sharp), 10 * median(blurred)) << median(sharp) << " " << median(blurred);
  const auto before = nlohmann::json::parse(read_file(at("out/s/summary.json")));
  EXPECT_EQ(before["tiles_scored"], int(rows.size()));
  EXPECT_EQ(before["out_of_focus_tiles"], 0);

  // Between the two halves: the same scores, the blurred half set aside.
  const double threshold = std::sqrt(median(sharp) * median(blurred));
  const int64_t below = std::count_if(rows.begin(), rows.end(),
                                      [&](const TileRow& r) { return r.focus < threshold; });
  const std::string csv = read_file(at("out/s/tiles.csv"));
  const CommandResult focused = run(slide + " --min-focus " + std::to_string(threshold));
  ASSERT_EQ(focused.status, 0) << focused.output;
  EXPECT_NE(focused.output.find(std::to_string(below) + " of " + std::to_string(rows.size()) +
                                " tiles out of focus"),
            std::string::npos)
      << focused.output;
  EXPECT_EQ(read_file(at("out/s/tiles.csv")), csv);  // not scored again, nothing lost
  const auto after = nlohmann::json::parse(read_file(at("out/s/summary.json")));
  EXPECT_EQ(after["out_of_focus_tiles"], below);
  EXPECT_EQ(after["tiles_scored"], int64_t(rows.size()) - below);
  EXPECT_GT(after["out_of_focus_fraction"].get<double>(), 0.2) << after.dump();
  EXPECT_LT(after["out_of_focus_fraction"].get<double>(), 0.8) << after.dump();
  const auto geo = nlohmann::json::parse(read_file(at("out/s/tiles.geojson")));
  EXPECT_EQ(int64_t(geo["features"].size()), int64_t(rows.size()) - below);
}

}  // namespace
}  // namespace histocnn
