// Gated attention MIL (nn/attention_mil.h) and its cohort training
// (slide/mil_cohort.h): gradients against finite differences, the
// attention's contracts, a synthetic cohort whose malignant slides hide a few
// tumour tiles among many normal ones (mean pooling cannot see them; the
// attention must find them), the model file and the cohort reader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/rng.h"
#include "slide/mil_cohort.h"
#include "slide/tile_features.h"
#include "test_util.h"
#include "train/metrics.h"

namespace histocnn {
namespace {
namespace fs = std::filesystem;

std::vector<float> random_tiles(int64_t n, int d, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(size_t(n * d));
  for (float& x : v) x = float(rng.normal());
  return v;
}

TEST(AttentionMil, GradientsMatchFiniteDifferences) {
  const int d = 5, l = 3;
  const int64_t n = 7;
  AttentionMil m = AttentionMil::initial(d, l, 3);
  // Off-default statistics and biases, so every term shows.
  for (int j = 0; j < d; ++j) m.mean[size_t(j)] = 0.1f * float(j), m.inv_sd[size_t(j)] = 0.8f;
  Rng rng(9);
  for (float& p : m.params) p += float(rng.uniform(-0.3, 0.3));
  const std::vector<float> tiles = random_tiles(n, d, 4);
  for (int label : {0, 1}) {
    std::vector<double> g(m.params.size(), 0.0);
    m.loss_and_gradient(tiles.data(), n, label, g);
    for (size_t i = 0; i < m.params.size(); ++i) {
      AttentionMil up = m, down = m;
      const float h = 1e-3f;
      up.params[i] += h, down.params[i] -= h;
      std::vector<double> scratch(m.params.size());
      const double numeric = (up.loss_and_gradient(tiles.data(), n, label, scratch) -
                              down.loss_and_gradient(tiles.data(), n, label, scratch)) /
                             double(up.params[i] - down.params[i]);
      EXPECT_NEAR(g[i], numeric, 1e-4 + 1e-3 * std::abs(numeric))
          << "param " << i << " label " << label;
    }
  }
}

TEST(AttentionMil, AttentionIsADistributionAndTheOrderOfTilesDoesNotMatter) {
  const int d = 6;
  AttentionMil m = AttentionMil::initial(d, 4, 1);
  const std::vector<float> tiles = random_tiles(9, d, 2);
  const auto out = m.forward(tiles.data(), 9);
  double sum = 0;
  for (double a : out.attention) {
    sum += a;
    EXPECT_GT(a, 0.0);
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
  EXPECT_NEAR(out.p_malignant, 1 / (1 + std::exp(-out.logit)), 1e-12);
  // Reversed tiles: the same P, the attention reversed.
  std::vector<float> reversed;
  for (int i = 8; i >= 0; --i)
    reversed.insert(reversed.end(), tiles.begin() + i * d, tiles.begin() + (i + 1) * d);
  const auto back = m.forward(reversed.data(), 9);
  EXPECT_NEAR(back.p_malignant, out.p_malignant, 1e-12);
  for (int i = 0; i < 9; ++i)
    EXPECT_NEAR(back.attention[size_t(8 - i)], out.attention[size_t(i)], 1e-12);
  // One tile: all the attention.
  EXPECT_EQ(m.forward(tiles.data(), 1).attention, std::vector<double>{1.0});
  EXPECT_NE(testing::error_of([&] { m.forward(tiles.data(), 0); }), "");
}

// 40 slides of 150-400 tiles of 8 features; a malignant slide hides 3-5%
// tumour tiles, shifted by 3.5 along one feature, among normal ones, and
// every slide's tiles share a random offset (sd 0.5, its staining), so the
// mean over a slide's tiles tells the classes apart poorly (AUC 0.67 when
// written) and the tumour tiles must be found.
std::vector<MilBag> synthetic_cohort(uint64_t seed) {
  Rng rng(seed);
  std::vector<MilBag> bags;
  for (int s = 0; s < 40; ++s) {
    MilBag b;
    b.slide = "slide" + std::to_string(s);
    b.patient = "P" + std::to_string(s / 2);
    b.label = (s / 2) % 2;
    const int64_t n = 150 + int64_t(rng.below(250));
    b.tiles.rows = n;
    b.tiles.width = 8;
    std::vector<double> offset(8);
    for (double& o : offset) o = 0.5 * rng.normal();
    for (int64_t i = 0; i < n; ++i) {
      const bool tumour = b.label && rng.uniform() < 0.03 + 0.02 * rng.uniform();
      for (int j = 0; j < 8; ++j)
        b.tiles.features.push_back(
            float(rng.normal() + offset[size_t(j)] + (tumour && j == 2 ? 3.5 : 0)));
      b.tiles.coords.insert(b.tiles.coords.end(), {i, tumour ? 1 : 0, 1, 1});  // y marks tumour
      b.tiles.p_malignant.push_back(0.5f);
      b.tiles.focus.push_back(100.0f);
    }
    bags.push_back(std::move(b));
  }
  return bags;
}

TEST(MilCohort, CrossValidationFindsTheHiddenTumourTilesByAttention) {
  const std::vector<MilBag> bags = synthetic_cohort(5);
  MilOptions o;
  o.epochs = 30;
  o.learning_rate = 2e-3f;
  o.max_tiles = 256;
  const MilCrossValidation cv = cross_validate_mil(bags, 5, o);
  std::vector<Prediction> predictions, mean_pooled;
  for (size_t i = 0; i < bags.size(); ++i) {
    predictions.push_back({float(cv.p[i]), bags[i].label});
    double mean2 = 0;  // what mean pooling sees of the tumour feature
    for (int64_t t = 0; t < bags[i].tiles.rows; ++t)
      mean2 += bags[i].tiles.features[size_t(t * 8 + 2)];
    mean_pooled.push_back({float(mean2 / double(bags[i].tiles.rows)), bags[i].label});
  }
  const double auc = compute_metrics(predictions).auc;
  EXPECT_GT(auc, 0.9);  // 0.94 when written
  EXPECT_LT(compute_metrics(mean_pooled).auc, auc - 0.15) << "the slide mean is the weaker cue";
  // Patients held out together.
  for (size_t i = 0; i + 1 < bags.size(); i += 2) EXPECT_EQ(cv.fold[i], cv.fold[i + 1]);
  // On held-out malignant slides the tumour tiles draw the attention.
  double tumour = 0, normal = 0;
  int64_t tumours = 0, normals = 0;
  for (size_t i = 0; i < bags.size(); ++i) {
    if (!bags[i].label) continue;
    for (int64_t t = 0; t < bags[i].tiles.rows; ++t) {
      const bool is_tumour = bags[i].tiles.coords[size_t(t * 4 + 1)] == 1;
      (is_tumour ? tumour : normal) += cv.attention[i][size_t(t)];
      ++(is_tumour ? tumours : normals);
    }
  }
  EXPECT_GT(tumour / double(tumours), 5 * normal / double(normals));
  // Deterministic for a seed, whatever the threads: the folds and the final
  // model are trained at once, each a function of the seed alone.
  o.threads = 4;
  const MilCrossValidation parallel = cross_validate_mil(bags, 5, o);
  EXPECT_EQ(parallel.p, cv.p);
  EXPECT_EQ(parallel.attention, cv.attention);
  EXPECT_EQ(parallel.final_model.params, cv.final_model.params);
  std::vector<const MilBag*> all;
  for (const MilBag& b : bags) all.push_back(&b);
  EXPECT_EQ(cv.final_model.params, train_attention_mil(all, o).params) << "trained on every bag";
}

TEST(MilCohort, TheModelFileRoundTripsAndForeignFilesAreRefused) {
  testing::TempDir dir;
  AttentionMil m = AttentionMil::initial(6, 4, 7);
  m.mean[2] = 0.5f, m.inv_sd[3] = 2.0f;
  save_attention_mil(dir / "mil.safetensors", m, {{"epochs", 3}});
  nlohmann::json trained;
  const AttentionMil back = load_attention_mil(dir / "mil.safetensors", &trained);
  EXPECT_EQ(back.params, m.params);
  EXPECT_EQ(back.mean, m.mean);
  EXPECT_EQ(back.inv_sd, m.inv_sd);
  EXPECT_EQ(trained["epochs"], 3);
  const std::vector<float> tiles = random_tiles(5, 6, 1);
  EXPECT_EQ(back.forward(tiles.data(), 5).p_malignant, m.forward(tiles.data(), 5).p_malignant);
  TileFeatureLog log(dir.path(), 6, 0);
  log.finish({}, {}, {});
  const std::string e = testing::error_of([&] { load_attention_mil(log.path()); });
  EXPECT_NE(e.find("not an attention MIL model"), std::string::npos) << e;
}

void write_slide_features(const std::string& folder, int rows, int width, const std::string& path) {
  make_directories(folder);
  TileFeatureLog log(folder, width, 0);
  std::vector<TileScore> scores(static_cast<size_t>(rows));
  std::vector<Tile> tiles;
  for (int i = 0; i < rows; ++i) {
    scores[size_t(i)].features.assign(size_t(width), float(i));
    scores[size_t(i)].focus = float(10 * i);
    tiles.push_back({i, 0, 1, 1, 1, i, 0});
  }
  log.append(scores);
  log.finish(tiles, scores, {{"slide", path}});
}

TEST(MilCohort, TheCohortReaderMatchesLabelsAndRefusesWhatItCannotUse) {
  testing::TempDir dir;
  const std::string cohort = dir / "cohort";
  EXPECT_NE(testing::error_of([&] { read_mil_cohort(cohort); }).find("not a folder"),
            std::string::npos);
  make_directories(cohort + "/empty");
  EXPECT_NE(testing::error_of([&] {
              read_mil_cohort(cohort);
            }).find("no slide folder holds features.safetensors"),
            std::string::npos);
  write_slide_features(cohort + "/b", 4, 3, "/data/b.svs");
  write_slide_features(cohort + "/a", 3, 3, "/data/a.svs");
  write_file_atomically(dir / "labels.csv",
                        "slide,label,patient\na.svs,malignant,P1\nb,benign,P2\n");
  const SlideLabels labels = SlideLabels::read(dir / "labels.csv");
  std::vector<MilBag> bags = read_mil_cohort(cohort, 15);
  label_mil_bags(bags, labels);
  ASSERT_EQ(bags.size(), 2u);
  EXPECT_EQ(bags[0].slide, "a");
  EXPECT_EQ(bags[0].label, 1);
  EXPECT_EQ(bags[0].patient, "P1");
  EXPECT_EQ(bags[0].tiles.rows, 1) << "focus 0 and 10 left out";
  EXPECT_EQ(bags[1].tiles.rows, 2);
  EXPECT_EQ(bags[1].tiles.features.front(), 2.0f);
  write_slide_features(cohort + "/c", 2, 3, "/data/c.svs");
  const std::string missing = testing::error_of([&] {
    std::vector<MilBag> three = read_mil_cohort(cohort);
    label_mil_bags(three, labels);
  });
  EXPECT_NE(missing.find("labels.csv: no row for the slide c"), std::string::npos) << missing;
  write_file_atomically(cohort + "/c/summary.json", "{\"p_max\": 0.");
  const std::string torn = testing::error_of([&] { read_mil_cohort(cohort); });
  EXPECT_NE(torn.find("c/summary.json: not JSON"), std::string::npos) << torn;
  fs::remove(cohort + "/c/summary.json");
  write_slide_features(cohort + "/c", 2, 5, "/data/c.svs");
  const std::string wide = testing::error_of([&] { read_mil_cohort(cohort); });
  EXPECT_NE(wide.find("features 5 wide, a's 3"), std::string::npos) << wide;
}

}  // namespace
}  // namespace histocnn
