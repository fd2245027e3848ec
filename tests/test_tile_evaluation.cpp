// A cohort's tiles pooled against the annotations (slide/tile_evaluation.h):
// the weighted AUC the bootstrap relies on against compute_metrics, the
// pooled numbers, patients as bootstrap units, and the JSON and headline.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "slide/tile_evaluation.h"
#include "study/eval_figures.h"

namespace histocnn {
namespace {

std::vector<Prediction> ascending(std::vector<Prediction> p) {
  std::stable_sort(p.begin(), p.end(), [](const Prediction& a, const Prediction& b) {
    return a.p_malignant < b.p_malignant;
  });
  return p;
}

// Every tile its own unit: 0, 1, 2, ...
std::vector<int> own_units(size_t n) {
  std::vector<int> unit(n);
  for (size_t i = 0; i < n; ++i) unit[i] = int(i);
  return unit;
}

// Scores on a coarse grid, so that many tie across the classes.
std::vector<Prediction> random_tiles(Rng& rng, size_t n, double separation) {
  std::vector<Prediction> tiles;
  for (size_t i = 0; i < n; ++i) {
    const int label = rng.below(3) == 0;
    const double p = std::min(1.0, rng.uniform() * (1 - separation) + separation * label);
    tiles.push_back({float(std::round(p * 20) / 20), label});
  }
  return tiles;
}

TEST(TileEvaluation, WeightedAucIsTheMannWhitneyAucOfTheRepeatedTiles) {
  Rng rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<Prediction> tiles =
        ascending(random_tiles(rng, 50 + size_t(trial) * 10, 0.3));
    const std::vector<int> unit = own_units(tiles.size());
    EXPECT_NEAR(weighted_auc(tiles, unit, std::vector<double>(tiles.size(), 1.0)),
                compute_metrics(tiles).auc, 1e-12);
    // Integer weights are repetitions: the AUC of the tiles repeated.
    std::vector<double> weight;
    std::vector<Prediction> repeated;
    for (const Prediction& p : tiles) {
      weight.push_back(double(rng.below(3)));
      for (int k = 0; k < int(weight.back()); ++k) repeated.push_back(p);
    }
    const double auc = weighted_auc(tiles, unit, weight);
    if (std::isnan(auc)) continue;
    EXPECT_NEAR(auc, compute_metrics(repeated).auc, 1e-12);
  }
  // Units share a weight: two tiles of unit 0, one of unit 1.
  const std::vector<Prediction> three = {{0.2f, 0}, {0.5f, 1}, {0.7f, 0}};
  EXPECT_DOUBLE_EQ(weighted_auc(three, {0, 1, 0}, {1, 1}), 0.5);
  EXPECT_DOUBLE_EQ(weighted_auc(three, {0, 1, 1}, {1, 3}), 0.25);  // 0.5 > 0.2 only, 1 of 4
  const std::vector<Prediction> one_class = {{0.2f, 1}, {0.7f, 1}};
  EXPECT_TRUE(std::isnan(weighted_auc(one_class, {0, 0}, {1})));
}

TEST(TileEvaluation, PooledTilesWithPatientsAsBootstrapUnits) {
  Rng rng(3);
  // Six slides of three patients; slide 5 is a benign slide without a file.
  std::vector<AnnotatedSlide> slides;
  std::vector<Prediction> pooled;
  for (int s = 0; s < 6; ++s) {
    AnnotatedSlide a{"s" + std::to_string(s) + ".svs", "p" + std::to_string(s / 2), {}};
    a.tiles = random_tiles(rng, 200, 0.4);
    if (s == 5)
      for (Prediction& p : a.tiles) p.label = 0;
    pooled.insert(pooled.end(), a.tiles.begin(), a.tiles.end());
    slides.push_back(a);
  }
  const TileEvaluation e = evaluate_tiles(slides, {});
  const Metrics m = compute_metrics(pooled);
  EXPECT_EQ(e.metrics.count, 1200);
  EXPECT_DOUBLE_EQ(e.metrics.auc, m.auc);
  EXPECT_EQ(e.unit, "patient");
  EXPECT_EQ(e.units, 3);
  EXPECT_EQ(e.auc.samples, 2000);
  EXPECT_LE(e.auc.low, m.auc);
  EXPECT_GE(e.auc.high, m.auc);
  EXPECT_GT(e.auc.high - e.auc.low, 0.0);
  EXPECT_LE(e.sensitivity.low, double(m.tp) / (m.tp + m.fn));
  EXPECT_GE(e.specificity.high, double(m.tn) / (m.tn + m.fp));
  const nlohmann::json j = e.to_json();
  EXPECT_EQ(j["per_slide"].size(), 6u);
  EXPECT_EQ(j["per_slide"][5]["malignant_tiles"], 0);
  EXPECT_TRUE(j["per_slide"][5]["auc"].is_null());
  EXPECT_EQ(j["bootstrap"]["unit"], "patient");
  EXPECT_EQ(j["tiles"], 1200);
  EXPECT_EQ(j["confusion"]["tp"], m.tp);
  EXPECT_NE(e.headline().find("tile level (1200 tiles of 6 slides, "), std::string::npos)
      << e.headline();
  EXPECT_NE(e.headline().find(" over 3 patients); at 0.5: sensitivity "), std::string::npos)
      << e.headline();
  // The same seed, the same intervals; without patients each slide is a unit.
  EXPECT_DOUBLE_EQ(evaluate_tiles(slides, {}).auc.low, e.auc.low);
  for (AnnotatedSlide& s : slides) s.patient.clear();
  const TileEvaluation by_slide = evaluate_tiles(slides, {});
  EXPECT_EQ(by_slide.unit, "slide");
  EXPECT_EQ(by_slide.units, 6);
  EXPECT_TRUE(by_slide.to_json()["per_slide"][0]["patient"].is_null());
}

TEST(TileEvaluation, SlidesNotTilesAreDrawn) {
  // Slide a ranks its tiles perfectly, slide b exactly backwards: pooled,
  // the AUC is 0.5. Drawing slides, a quarter of the replicates hold only a
  // (AUC 1) and a quarter only b (AUC 0), so the interval spans nearly all
  // of [0, 1]; drawing 400 tiles would have kept it near 0.5.
  AnnotatedSlide a{"a.svs", "", {}}, b{"b.svs", "", {}};
  for (int i = 0; i < 200; ++i) {
    a.tiles.push_back({i % 2 ? 0.8f : 0.2f, i % 2});
    b.tiles.push_back({i % 2 ? 0.2f : 0.8f, i % 2});
  }
  const TileEvaluation e = evaluate_tiles({a, b}, {});
  EXPECT_DOUBLE_EQ(e.metrics.auc, 0.5);
  EXPECT_LT(e.auc.low, 0.05);
  EXPECT_GT(e.auc.high, 0.95);
}

TEST(TileEvaluation, ALargeCurveIsThinnedForTheFigureWithinItsStep) {
  Rng rng(5);
  std::vector<Prediction> tiles;
  for (int i = 0; i < 200000; ++i) {
    const int label = rng.below(2);
    tiles.push_back({float(rng.uniform() * 0.8 + 0.2 * label), label});
  }
  const auto curve = roc_curve(tiles);
  const double step = 1.0 / 2000;
  const auto thin = thin_roc_curve(curve, step);
  EXPECT_GT(curve.size(), 100000u);
  EXPECT_LE(thin.size(), 4002u);
  EXPECT_EQ(thin.front(), curve.front());
  EXPECT_EQ(thin.back(), curve.back());
  // Every point of the full curve lies within `step` above and right of a kept one.
  size_t k = 0;
  for (const auto& [fpr, tpr] : curve) {
    while (k + 1 < thin.size() && thin[k + 1].first <= fpr && thin[k + 1].second <= tpr) ++k;
    ASSERT_LE(fpr - thin[k].first, step + 1e-12);
    ASSERT_LE(tpr - thin[k].second, step + 1e-12);
  }
  const std::vector<std::pair<double, double>> three = {{0, 0}, {0.5, 0.5}, {1, 1}};
  EXPECT_EQ(thin_roc_curve(three, step), three);  // big jumps keep every point
}

TEST(TileEvaluation, OneClassGivesNoAucAndItSaysWhy) {
  const TileEvaluation e = evaluate_tiles({{"b.svs", "", {{0.1f, 0}, {0.7f, 0}}}}, {});
  EXPECT_TRUE(std::isnan(e.metrics.auc));
  EXPECT_TRUE(e.to_json()["auc"].is_null());
  EXPECT_TRUE(e.to_json()["auc_95ci"].is_null());
  EXPECT_DOUBLE_EQ(e.to_json()["specificity"].get<double>(), 0.5);
  EXPECT_NE(e.headline().find("AUC n/a (it needs benign and malignant tiles)"), std::string::npos);
}

}  // namespace
}  // namespace histocnn
