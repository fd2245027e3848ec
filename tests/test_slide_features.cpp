// Tile features for slide-level models (slide/tile_features.h): what the
// members' last dense layers read, averaged over the transforms and joined
// across members; the append-before-resume-point log, its repair and its
// refusals; and a slide scored with --features, whose rows reproduce each
// tile's P through the network's last layer and survive a crash between the
// two appends bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/atomic_file.h"
#include "data/augment.h"
#include "data/synth_slide.h"
#include "nn/safetensors.h"
#include "slide/slide_run.h"
#include "slide/tile_features.h"
#include "test_util.h"
#include "tiles_csv.h"
#include "train/checkpoint.h"
#include "train/member_prediction.h"

namespace histocnn {
namespace {
namespace fs = std::filesystem;

std::unique_ptr<TrainingStep> random_network(const std::string& spec_text, int batch, int side,
                                             uint64_t seed) {
  const ModelSpec spec = parse_model_spec(spec_text, "test");
  const NetworkShape shape = infer_shapes(spec, batch, side, side);
  auto step = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
  step->set_parameters(Parameters::glorot(shape, seed));
  return step;
}

TEST(TileFeatures, MembersAreJoinedAndEachAveragedOverTheTransforms) {
  const int side = 12, batch = 3, rows = 2;
  auto a = random_network("conv 4 kernel=3 pool=2; dense 8; dropout 0.5; dense 2", batch, side, 1);
  auto b = random_network("conv 4 kernel=3 pool=2; dense 5; dense 2", batch, side, 2);
  const auto input = testing::random_vector(size_t(batch) * 3 * side * side, 7, -1, 1);
  MemberPredictor predictor({a.get(), b.get()}, {Tempering{}, Tempering{}}, side, side, true);
  ASSERT_EQ(predictor.feature_width(), 13);
  predictor.predict(input.data(), rows, true);
  // The same by hand: each member over the 8 views, then side by side.
  const size_t plane = size_t(3) * side * side;
  std::vector<double> want(size_t(rows) * 13, 0.0);
  std::vector<float> view(input.size()), probs(size_t(batch) * 2), f(size_t(batch) * 8);
  for (int k = 0; k < 8; ++k) {
    for (int r = 0; r < rows; ++r)
      dihedral_chw(input.data() + plane * r, view.data() + plane * r, 3, side, side, k);
    int column = 0;
    for (TrainingStep* m : {a.get(), b.get()}) {
      m->predict_features(view.data(), rows, probs.data(), f.data());
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < m->feature_width(); ++j)
          want[size_t(r) * 13 + size_t(column + j)] += f[size_t(r * m->feature_width() + j)] / 8.0;
      column += m->feature_width();
    }
  }
  for (int r = 0; r < rows; ++r) {
    const std::vector<float> got = predictor.features(r);
    ASSERT_EQ(got.size(), 13u);
    for (size_t j = 0; j < 13; ++j) EXPECT_NEAR(got[j], want[size_t(r) * 13 + j], 1e-6) << r;
    for (size_t j = 0; j < 8; ++j) EXPECT_GE(got[j], 0.0f) << "after the ReLU";
  }
  predictor.predict(input.data(), rows);
  EXPECT_NE(testing::error_of([&] { predictor.features(0); }), "") << "not asked for";
}

std::vector<TileScore> scores_with(int count, int width, float base) {
  std::vector<TileScore> s(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    s[size_t(i)].p_malignant = 0.1 * i;
    s[size_t(i)].focus = float(i);
    for (int j = 0; j < width; ++j) s[size_t(i)].features.push_back(base + float(i * width + j));
  }
  return s;
}

TEST(TileFeatures, TheLogKeepsWhatTilesCsvConfirmsAndRefusesWhatItLacks) {
  testing::TempDir dir;
  const std::string partial = dir / "features.partial", final = dir / "features.safetensors";
  {
    TileFeatureLog log(dir.path(), 3, 0);
    log.append(scores_with(4, 3, 0));
    log.append(scores_with(2, 3, 100));  // not yet in tiles.csv when the run died
  }
  EXPECT_EQ(fs::file_size(partial), 6u * 3 * sizeof(float));
  // tiles.csv holds 4 rows: the unconfirmed two go, the rest stays.
  TileFeatureLog log(dir.path(), 3, 4);
  EXPECT_EQ(fs::file_size(partial), 4u * 3 * sizeof(float));
  log.append(scores_with(1, 3, 50));
  std::vector<TileScore> all = scores_with(4, 3, 0);
  all.push_back(scores_with(1, 3, 50).front());
  std::vector<Tile> tiles;
  for (int i = 0; i < 5; ++i) tiles.push_back({10 * i, 20 * i, 7, 8, 1, i, 0});
  log.finish(tiles, all, {{"slide", "s.tif"}});
  EXPECT_FALSE(fs::exists(partial));
  const TileFeatures t = read_tile_features(final);
  ASSERT_EQ(t.rows, 5);
  ASSERT_EQ(t.width, 3);
  for (size_t i = 0; i < 5; ++i) {
    for (size_t j = 0; j < 3; ++j) EXPECT_EQ(t.features[i * 3 + j], all[i].features[j]);
    EXPECT_EQ(t.coords[i * 4], 10 * int64_t(i));
    EXPECT_EQ(t.coords[i * 4 + 1], 20 * int64_t(i));
    EXPECT_EQ(t.coords[i * 4 + 3], 8);
    EXPECT_FLOAT_EQ(t.p_malignant[i], float(all[i].p_malignant));
  }
  EXPECT_EQ(t.metadata.at("slide"), "s.tif");
  EXPECT_EQ(t.metadata.at("format"), kTileFeaturesFormat);
  log.finish(tiles, all, {});  // idempotent: the file stays
  EXPECT_EQ(read_tile_features(final).rows, 5);
  // A finished slide reopens quietly; another width or count is refused.
  EXPECT_NO_THROW(TileFeatureLog(dir.path(), 3, 5));
  EXPECT_NE(testing::error_of([&] { TileFeatureLog(dir.path(), 4, 5); }).find("--restart"),
            std::string::npos);
  // Scored rows without their features (a run without --features).
  fs::remove(final);
  const std::string missing = testing::error_of([&] { TileFeatureLog(dir.path(), 3, 5); });
  EXPECT_NE(missing.find("features.partial: missing"), std::string::npos) << missing;
  EXPECT_NE(missing.find("--restart"), std::string::npos) << missing;
  write_file_atomically(partial, std::string(2 * 3 * sizeof(float), '\0'));
  const std::string shorter = testing::error_of([&] { TileFeatureLog(dir.path(), 3, 5); });
  EXPECT_NE(shorter.find("holds the features of 2 tiles"), std::string::npos) << shorter;
  // Not a features file.
  write_safetensors(dir / "other.safetensors", SafetensorsFile{});
  const std::string other =
      testing::error_of([&] { read_tile_features(dir / "other.safetensors"); });
  EXPECT_NE(other.find("not a tile features file"), std::string::npos) << other;
}

TEST(TileFeatures, ASlideWithoutTissueHasAnEmptyFile) {
  testing::TempDir dir;
  TileFeatureLog log(dir.path(), 64, 0);
  log.finish({}, {}, {});
  const TileFeatures t = read_tile_features(log.path());
  EXPECT_EQ(t.rows, 0);
  EXPECT_EQ(t.width, 64);
}

class SlideFeatures : public ::testing::Test {
 protected:
  void SetUp() override {
    SynthSlideOptions so;
    so.width = 2400, so.height = 1400, so.pieces = 2, so.mpp = 0.5;
    write_synthetic_slide(dir_ / "s.tif", so);
    model_.spec = parse_model_spec("conv 4 kernel=3 pool=2; dense 6; dropout 0.5; dense 2", "t");
    model_.width = model_.height = 16;
    model_.crop = "whole";
    model_.mpp_x = model_.mpp_y = 4.0;  // 128 level-0 pixels a tile
    const NetworkShape shape = infer_shapes(model_.spec, 8, 16, 16);
    model_.params = Parameters::glorot(shape, 11);
    save_model_file(dir_ / "m.safetensors", model_);
    step_ = make_backend(cpu_device())->compile(model_.spec, shape, StepOptions{});
    step_->set_parameters(model_.params);
    options_.model_paths = {dir_ / "m.safetensors"};
    options_.batch = 8;
    options_.progress = false;
    options_.features = true;
  }
  nlohmann::json score() {
    options_.output = dir_.path();
    return score_slide(dir_ / "s.tif", {model_}, {step_.get()}, options_, nullptr);
  }
  testing::TempDir dir_;
  ModelFile model_;
  std::unique_ptr<TrainingStep> step_;
  SlideOptions options_;
};

TEST_F(SlideFeatures, RowsFollowTilesCsvAndReproduceEachTilesP) {
  const nlohmann::json summary = score();
  EXPECT_EQ(summary.value("features", ""), "features.safetensors");
  const std::string folder = dir_ / "s";
  const auto rows = testing::read_tile_rows(folder + "/tiles.csv");
  const TileFeatures t = read_tile_features(folder + "/features.safetensors");
  ASSERT_GT(rows.size(), 20u);
  ASSERT_EQ(t.rows, int64_t(rows.size()));
  ASSERT_EQ(t.width, 6);
  EXPECT_FALSE(fs::exists(folder + "/features.partial"));
  const float* w = model_.params.data(model_.params.info("fc2.weight"));
  const float* b = model_.params.data(model_.params.info("fc2.bias"));
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(t.coords[i * 4], int64_t(rows[i].x));
    EXPECT_EQ(t.coords[i * 4 + 1], int64_t(rows[i].y));
    EXPECT_NEAR(t.p_malignant[i], rows[i].p, 1e-5);
    // The last layer on the row gives the tile's P: these are its inputs.
    double logit[2] = {b[0], b[1]};
    for (int c = 0; c < 2; ++c)
      for (int j = 0; j < 6; ++j) logit[c] += double(w[c * 6 + j]) * t.features[i * 6 + size_t(j)];
    EXPECT_NEAR(1 / (1 + std::exp(logit[0] - logit[1])), rows[i].p, 1e-4) << "tile " << i;
  }
  EXPECT_EQ(t.metadata.at("slide_name"), "s");
  EXPECT_EQ(t.metadata.at("member_widths"), "[6]");
}

TEST_F(SlideFeatures, ACrashBetweenTheAppendsContinuesToTheSameBytes) {
  score();
  const std::string folder = dir_ / "s";
  const auto rows = testing::read_tile_rows(folder + "/tiles.csv");
  // Killed after batch 3's features were appended but before its tiles.csv
  // rows: tiles.csv holds 16 rows, the partial file 24 and half a row more.
  const TileFeatures t = read_tile_features(folder + "/features.safetensors");
  std::string partial(reinterpret_cast<const char*>(t.features.data()),
                      size_t(24 * 6 + 3) * sizeof(float));
  write_file_atomically(folder + "/features.partial", partial);
  fs::remove(folder + "/features.safetensors");
  const std::string csv = read_file(folder + "/tiles.csv");
  size_t cut = 0;
  for (int line = 0; line < 17; ++line) cut = csv.find('\n', cut) + 1;  // header + 16 rows
  write_file_atomically(folder + "/tiles.csv", csv.substr(0, cut));
  score();
  // The features bit for bit; P and focus as tiles.csv gave them back.
  const TileFeatures again = read_tile_features(folder + "/features.safetensors");
  ASSERT_EQ(again.rows, t.rows);
  EXPECT_TRUE(again.features == t.features) << "the resumed features differ";
  EXPECT_TRUE(again.coords == t.coords);
  for (size_t i = 0; i < size_t(t.rows); ++i) {
    EXPECT_NEAR(again.p_malignant[i], t.p_malignant[i], 1e-5);
    EXPECT_NEAR(again.focus[i], t.focus[i], 1e-3 * std::max(1.0f, t.focus[i]));
  }
  EXPECT_EQ(testing::read_tile_rows(folder + "/tiles.csv").size(), rows.size());
}

TEST_F(SlideFeatures, ARunWithoutFeaturesIsNotContinuedWithThem) {
  options_.features = false;
  score();
  EXPECT_FALSE(fs::exists(dir_ / "s/features.safetensors"));
  options_.features = true;
  const std::string e = testing::error_of([&] { score(); });
  EXPECT_NE(e.find("another features (none, now true); --restart"), std::string::npos) << e;
  options_.restart = true;
  score();
  EXPECT_EQ(read_tile_features(dir_ / "s/features.safetensors").rows,
            int64_t(testing::read_tile_rows(dir_ / "s/tiles.csv").size()));
}

}  // namespace
}  // namespace histocnn
