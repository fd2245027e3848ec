// Region annotations as QuPath exports them (data/annotations.h) and a
// slide's tiles checked against them (slide/tile_truth.h): polygons with
// holes, multipolygons, classes that count and those that do not, our own
// detections never read as annotations, and one-line errors.
#include <gtest/gtest.h>

#include "data/annotations.h"
#include "slide/tile_truth.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::error_of;

// A 10 x 10 "Tumor" square with a 2 x 2 hole at (4..6, 4..6), a "Stroma"
// square at x 20..30, and a second tumour as a MultiPolygon at x 40..50 and
// x 60..70; our own tiles.geojson detection over everything.
const char* kQuPath = R"({"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"objectType": "annotation",
     "classification": {"name": "Tumor", "color": [200, 0, 0]}},
   "geometry": {"type": "Polygon", "coordinates": [
     [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
     [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]]}},
  {"type": "Feature", "properties": {"classification": {"name": "Stroma"}},
   "geometry": {"type": "Polygon", "coordinates": [[[20, 0], [30, 0], [30, 10], [20, 10]]]}},
  {"type": "Feature", "properties": {"classification": "carcinoma"},
   "geometry": {"type": "MultiPolygon", "coordinates": [
     [[[40, 0], [50, 0], [50, 10], [40, 10]]], [[[60, 0], [70, 0], [70, 10], [60, 10]]]]}},
  {"type": "Feature", "properties": {"objectType": "detection",
     "classification": {"name": "Malignant"}},
   "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [99, 0], [99, 99], [0, 99]]]}}
]})";

TEST(Annotations, PolygonsHolesAndClassesAsQuPathWritesThem) {
  const Annotations a = parse_annotations(kQuPath, "a.geojson", default_annotation_classes());
  EXPECT_EQ(a.malignant.size(), 3u);  // the square and the multipolygon's two
  EXPECT_EQ(a.ignored, 1);            // stroma; the detection is not an annotation
  EXPECT_TRUE(a.malignant_at(2, 2));
  EXPECT_FALSE(a.malignant_at(5, 5)) << "in the hole";
  EXPECT_FALSE(a.malignant_at(25, 5)) << "stroma";
  EXPECT_TRUE(a.malignant_at(45, 5));
  EXPECT_TRUE(a.malignant_at(65, 5));
  EXPECT_FALSE(a.malignant_at(55, 5));
  EXPECT_FALSE(a.malignant_at(80, 80)) << "only the detection covers it";
  EXPECT_DOUBLE_EQ(a.malignant_fraction(45, 0, 10, 10), 0.5);  // half on x 40..50
  EXPECT_DOUBLE_EQ(a.malignant_fraction(3, 3, 4, 4), 0.75);    // the hole's quarter of it
  const Annotations every = parse_annotations(kQuPath, "a.geojson", {"any"});
  EXPECT_EQ(every.malignant.size(), 4u);
  EXPECT_TRUE(every.malignant_at(25, 5));
  const Annotations stroma = parse_annotations(kQuPath, "a.geojson", {"STROMA"});
  EXPECT_EQ(stroma.malignant.size(), 1u);
  EXPECT_EQ(stroma.ignored, 2);
  // A bare array of features, as QuPath writes for a selection.
  const Annotations bare = parse_annotations(
      R"([{"type": "Feature", "properties": {"classification": {"name": "Tumour"}},
           "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [0, 4]]]}}])",
      "b.json", default_annotation_classes());
  EXPECT_TRUE(bare.malignant_at(1, 1));
  EXPECT_FALSE(bare.malignant_at(3, 3));
}

TEST(Annotations, MistakesGetOneLineNamingTheFileAndFeature) {
  auto error = [](const std::string& content) {
    return error_of([&] { parse_annotations(content, "r.geojson", {"any"}); });
  };
  EXPECT_EQ(error("<xml/>"), "r.geojson: not JSON (expected QuPath's GeoJSON annotations)");
  EXPECT_EQ(error(R"({"type": "Feature"})"),
            "r.geojson: not GeoJSON annotations (expected a FeatureCollection, as QuPath's File "
            "> Export objects as GeoJSON writes)");
  EXPECT_EQ(error(R"([{"geometry": {"type": "Point", "coordinates": [1, 2]}}])"),
            "r.geojson feature 0: a Point region (only Polygon and MultiPolygon outline an area)");
  EXPECT_EQ(error(R"([{"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}])"),
            "r.geojson feature 0: a ring needs at least 3 [x, y] points");
  EXPECT_EQ(
      error(R"([{"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, "a"], [2, 2]]]}}])"),
      "r.geojson feature 0: a point is not [x, y] numbers");
  EXPECT_EQ(error(R"([{"properties": {}}])"), "r.geojson feature 0: no geometry");
  EXPECT_EQ(error("[3]"), "r.geojson feature 0: not a GeoJSON feature");
  testing::TempDir dir;
  EXPECT_EQ(error_of([&] { read_annotations(dir / "x.geojson", {"any"}); }),
            (dir / "x.geojson") + ": no such annotation file");
}

TEST(TileTruth, TilesHalfInsideAreMalignantAndScoredAsAClassifier) {
  const Annotations a = parse_annotations(kQuPath, "a.geojson", default_annotation_classes());
  // x 0..10 inside (less the hole), x 42..52 80% inside, x 48..58 20%, far out.
  const std::vector<Tile> tiles = {{0, 0, 10, 10, 1, 0, 0},
                                   {42, 0, 10, 10, 1, 0, 0},
                                   {48, 0, 10, 10, 1, 0, 0},
                                   {80, 0, 10, 10, 1, 0, 0}};
  const std::vector<TileScore> scores = {{0.9, 0, {}}, {0.4, 0, {}}, {0.6, 0, {}}, {0.1, 0, {}}};
  const nlohmann::json j = tiles_against_annotations(&a, tiles, scores);
  EXPECT_EQ(j["malignant_tiles"], 2);
  EXPECT_DOUBLE_EQ(j["auc"].get<double>(), 0.75);  // 0.9 > 0.6, 0.1; 0.4 > 0.1 only
  EXPECT_DOUBLE_EQ(j["sensitivity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["specificity"].get<double>(), 0.5);
  EXPECT_EQ(j["regions"], 3);
  EXPECT_EQ(j["ignored_annotations"], 1);
  // A benign slide without a file: every tile benign, no AUC.
  const nlohmann::json benign = tiles_against_annotations(nullptr, tiles, scores);
  EXPECT_EQ(benign["malignant_tiles"], 0);
  EXPECT_TRUE(benign["auc"].is_null());
  EXPECT_DOUBLE_EQ(benign["specificity"].get<double>(), 0.5);
  EXPECT_TRUE(benign["file"].is_null());
}

}  // namespace
}  // namespace histocnn
