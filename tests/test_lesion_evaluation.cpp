// Lesion-level detection (slide/lesion_evaluation.h): regions joined into
// lesions within twice the dilation, ITCs ignored, non-maximum suppression
// of the tile map, hits within the dilation, and the FROC by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "slide/lesion_evaluation.h"
#include "test_util.h"

namespace histocnn {
namespace {

// At 1 um per pixel: squares at x 0..400 and 410..800 (10 um apart: one
// lesion), one at x 2000..2400, a 100 x 100 speck at x 5000 (an ITC), and
// an excluded square inside the first at 100..300.
const char* kRegions = R"([
  {"properties": {"classification": {"name": "Tumor"}}, "geometry": {"type": "Polygon",
   "coordinates": [[[0, 0], [400, 0], [400, 400], [0, 400]]]}},
  {"properties": {"classification": {"name": "Tumor"}}, "geometry": {"type": "Polygon",
   "coordinates": [[[410, 0], [800, 0], [800, 400], [410, 400]]]}},
  {"properties": {"classification": {"name": "Tumor"}}, "geometry": {"type": "Polygon",
   "coordinates": [[[2000, 0], [2400, 0], [2400, 400], [2000, 400]]]}},
  {"properties": {"classification": {"name": "Tumor"}}, "geometry": {"type": "Polygon",
   "coordinates": [[[5000, 0], [5100, 0], [5100, 100], [5000, 100]]]}},
  {"properties": {"classification": {"name": "Exclusion"}}, "geometry": {"type": "Polygon",
   "coordinates": [[[100, 100], [300, 100], [300, 300], [100, 300]]]}}])";

TEST(LesionEvaluation, RegionsJoinIntoLesionsAndSpecksAreItcs) {
  const Annotations a = parse_annotations(kRegions, "r.geojson", default_annotation_classes());
  const std::vector<Lesion> lesions = find_lesions(a, 1.0, {});
  ASSERT_EQ(lesions.size(), 3u);
  EXPECT_EQ(lesions[0].regions.size() + lesions[1].regions.size() + lesions[2].regions.size(), 4u);
  int itcs = 0, joined = 0;
  for (const Lesion& l : lesions) {
    itcs += l.itc;
    joined += l.regions.size() == 2 && l.min_x == 0 && l.max_x == 800;
  }
  EXPECT_EQ(itcs, 1);
  EXPECT_EQ(joined, 1);
  // At 0.01 um per pixel twice the dilation is 15,000 pixels: all four join,
  // into one lesion of 51 um, an ITC; with a dilation of 4 um the 10-um gap
  // keeps the first two apart.
  const std::vector<Lesion> tiny = find_lesions(a, 0.01, {});
  ASSERT_EQ(tiny.size(), 1u);
  EXPECT_TRUE(tiny[0].itc);
  LesionOptions narrow;
  narrow.dilation_um = 4;
  EXPECT_EQ(find_lesions(a, 1.0, narrow).size(), 4u);
}

TEST(LesionEvaluation, HitsWithinTheDilationAndNotInTheExcludedTissue) {
  const Annotations a = parse_annotations(kRegions, "r.geojson", default_annotation_classes());
  const std::vector<Lesion> lesions = find_lesions(a, 1.0, {});
  auto lesion_at = [&](double x) {
    for (size_t l = 0; l < lesions.size(); ++l)
      if (lesions[l].min_x <= x && x <= lesions[l].max_x) return int(l);
    return -9;
  };
  EXPECT_EQ(lesion_hit(lesions, a, 50, 50, 75), lesion_at(50));
  EXPECT_EQ(lesion_hit(lesions, a, 600, 470, 75), lesion_at(600)) << "70 px below: dilated in";
  EXPECT_EQ(lesion_hit(lesions, a, 600, 480, 75), -1) << "80 px below";
  EXPECT_EQ(lesion_hit(lesions, a, 200, 200, 75), -1) << "excluded, 100 px from the outline";
  EXPECT_EQ(lesion_hit(lesions, a, 2200, 200, 75), lesion_at(2200));
  EXPECT_EQ(lesion_hit(lesions, a, 5050, 50, 75), -2) << "an ITC: ignored";
  EXPECT_EQ(lesion_hit(lesions, a, 3500, 200, 75), -1);
}

TEST(LesionEvaluation, NonMaximumSuppressionKeepsOnePeakPerFocus) {
  // A 7 x 3 grid of 100-px tiles at 1 um: a peak at column 1, another at 5.
  std::vector<Tile> tiles;
  std::vector<Prediction> p;
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 7; ++c) {
      tiles.push_back({c * 100, r * 100, 100, 100, 1, c, r});
      const float peak = (c == 1 && r == 1) ? 0.9f : (c == 5 && r == 1) ? 0.7f : 0.0f;
      const bool near = std::abs(c - 1) <= 1 || std::abs(c - 5) <= 1;
      p.push_back({std::max(peak, near ? 0.3f : 0.01f), 0});
    }
  // Each peak suppresses its 3 x 3 neighbourhood (the corners' centres are
  // 141 um away, within 200); column 3 (P 0.01) is under min_p.
  const std::vector<Detection> d = detect_lesions(tiles, p, 1.0, {});
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].x, 150);
  EXPECT_EQ(d[0].y, 150);
  EXPECT_FLOAT_EQ(d[0].p, 0.9f);
  EXPECT_EQ(d[1].x, 550);
  EXPECT_FLOAT_EQ(d[1].p, 0.7f);
  LesionOptions strict;
  strict.min_p = 0.8;
  EXPECT_EQ(detect_lesions(tiles, p, 1.0, strict).size(), 1u);
  LesionOptions close;
  close.nms_um = 50;  // nothing suppressed: every tile at or above min_p is a detection
  EXPECT_EQ(detect_lesions(tiles, p, 1.0, close).size(), 18u);
}

TEST(LesionEvaluation, TheFrocByHand) {
  // Slide a: lesions 0 and 1; b: none. Pooled by P: 0.9 hits a0 (FP 0,
  // sens 1/2), 0.85 FP (FP/slide 0.5), 0.8 FP (1.0), 0.7 hits a1 (1.0, 1),
  // 0.6 FP (1.5, 1).
  const std::vector<LesionSlide> slides = {{"a", 2, {{0.9f, 0}, {0.8f, -1}, {0.7f, 1}}},
                                           {"b", 0, {{0.85f, -1}, {0.6f, -1}}}};
  const Froc f = evaluate_lesions(slides, {});
  ASSERT_EQ(f.curve.size(), 5u);
  EXPECT_DOUBLE_EQ(f.curve[3][1], 1.0);
  EXPECT_DOUBLE_EQ(f.curve[3][2], 1.0);
  const std::array<double, 6> expected = {0.5, 0.5, 1, 1, 1, 1};
  for (size_t k = 0; k < 6; ++k) EXPECT_DOUBLE_EQ(f.sensitivity_at[k], expected[k]) << k;
  EXPECT_DOUBLE_EQ(f.score, 5.0 / 6);
  const nlohmann::json per_slide = f.to_json()["per_slide_at_p_0.5"];
  ASSERT_EQ(per_slide.size(), 2u);
  EXPECT_EQ(per_slide[0],
            nlohmann::json({{"slide", "a"}, {"lesions", 2}, {"found", 2}, {"false_positives", 1}}));
  EXPECT_EQ(per_slide[1],
            nlohmann::json({{"slide", "b"}, {"lesions", 0}, {"found", 0}, {"false_positives", 2}}));
  EXPECT_EQ(f.headline(),
            "lesion level (2 lesions on 2 slides): FROC 0.833; sensitivity 0.50 at 1/4, 1.00 at "
            "1, 1.00 at 8 false positives per slide");
  // The same lesion hit twice counts once.
  const Froc twice = evaluate_lesions({{"a", 2, {{0.9f, 0}, {0.8f, 0}}}}, {});
  EXPECT_DOUBLE_EQ(twice.sensitivity_at[5], 0.5);
  const Froc none = evaluate_lesions({{"b", 0, {{0.6f, -1}}}}, {});
  EXPECT_TRUE(std::isnan(none.score));
  EXPECT_TRUE(none.to_json()["froc_score"].is_null());
  EXPECT_NE(none.headline().find("FROC n/a"), std::string::npos);
}

}  // namespace
}  // namespace histocnn
