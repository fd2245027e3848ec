// `histocnn mil` end to end on a cohort folder as `histocnn slide --features
// -o COHORT` leaves it (features.safetensors and summary.json per slide,
// written here directly: scoring 24 slides would only slow the test): the
// cross-validated evaluation beside the fixed scores, the model, the
// predictions and attention, --apply on the same cohort, and one-line
// refusals that write nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "core/rng.h"
#include "data/image.h"
#include "slide/mil_cohort.h"
#include "slide/tile_features.h"
#include "test_util.h"

namespace histocnn {
namespace {
namespace fs = std::filesystem;
using testing::run;

// 24 slides of 12 patients; a malignant slide's tumour tiles (a tenth) are
// shifted along feature 1, and its top-mean score is deliberately useless.
void write_cohort(const std::string& cohort, const std::string& labels) {
  Rng rng(3);
  std::string rows = "slide,label,patient\n";
  for (int s = 0; s < 24; ++s) {
    const std::string name = "case" + std::to_string(s);
    const int label = (s / 2) % 2;
    rows += name + ".svs," + (label ? "malignant" : "benign") + ",P" + std::to_string(s / 2) + "\n";
    make_directories(cohort + "/" + name);
    TileFeatureLog log(cohort + "/" + name, 6, 0);
    std::vector<TileScore> scores(static_cast<size_t>(80));
    std::vector<Tile> tiles;
    for (int t = 0; t < 80; ++t) {
      const bool tumour = label && t % 10 == 0;
      for (int j = 0; j < 6; ++j)
        scores[size_t(t)].features.push_back(float(rng.normal() + (tumour && j == 1 ? 4 : 0)));
      scores[size_t(t)].p_malignant = 0.5;
      scores[size_t(t)].focus = 50;
      tiles.push_back({100 * t, 0, 100, 100, 1, t, 0});
    }
    log.append(scores);
    log.finish(tiles, scores, {{"slide", "/slides/" + name + ".svs"}, {"models", "[\"m\"]"}});
    nlohmann::json summary = {{"tiles_scored", 80},
                              {"p_max", rng.uniform()},
                              {"p_top_mean", rng.uniform()},
                              {"p_mean", rng.uniform()},
                              {"malignant_area_fraction", rng.uniform()}};
    if (s == 3) {  // tissue.png and the slide's size: its attention is drawn
      Image mask;
      mask.width = 200, mask.height = 20;
      mask.rgb.assign(size_t(200 * 20 * 3), 255);
      save_image(cohort + "/" + name + "/tissue.png", mask);
      summary["width"] = 8000, summary["height"] = 800, summary["mpp"] = {0.5, 0.5};
    }
    write_file_atomically(cohort + "/" + name + "/summary.json", summary.dump());
  }
  write_file_atomically(labels, rows);
}

TEST(MilCli, CrossValidatesBesideTheFixedScoresSavesAModelAndAppliesIt) {
  testing::TempDir dir;
  const std::string cohort = dir / "cohort", labels = dir / "labels.csv";
  write_cohort(cohort, labels);
  const auto r = run("mil " + cohort + " --slide-labels " + labels + " -o " + (dir / "mil") +
                     " --folds 4 --epochs 30 --lr 0.003");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("cross-validated slide level (mil, 24 slides, 12 malignant)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("beside top-mean of the tiles' P: AUC"), std::string::npos) << r.output;
  const auto e = nlohmann::json::parse(read_file(dir / "mil/slide-evaluation.json"));
  EXPECT_GT(e["auc"].get<double>(), 0.9);
  EXPECT_LT(e["by_score"]["top-mean"]["auc"].get<double>(), 0.9);
  EXPECT_EQ(e["bootstrap"]["unit"], "patient");
  for (const char* f : {"mil.safetensors", "mil-predictions.csv", "slide-roc.png",
                        "attention/case3.csv", "attention/case3.png"})
    EXPECT_TRUE(fs::exists(dir / ("mil/" + std::string(f)))) << f;
  const std::string predictions = read_file(dir / "mil/mil-predictions.csv");
  EXPECT_EQ(predictions.rfind("slide,patient,label,fold,tiles,p_mil,p_top_mean,p_max\n", 0), 0u);
  EXPECT_NE(predictions.find("\ncase3,P1,malignant,"), std::string::npos) << predictions;
  EXPECT_FALSE(fs::exists(dir / "mil/attention/case2.png")) << "no tissue.png to draw on";
  // The final model scores the cohort it was trained on: every slide right.
  const auto applied = run("mil " + cohort + " --apply " + (dir / "mil/mil.safetensors") +
                           " --slide-labels " + labels + " -o " + (dir / "applied"));
  ASSERT_EQ(applied.status, 0) << applied.output;
  const auto a = nlohmann::json::parse(read_file(dir / "applied/slide-evaluation.json"));
  EXPECT_EQ(a["auc"].get<double>(), 1.0);
  EXPECT_FALSE(fs::exists(dir / "applied/mil.safetensors"));
  // Without labels it only scores.
  const auto unlabelled = run("mil " + cohort + " --apply " + (dir / "mil/mil.safetensors") +
                              " -o " + (dir / "scored"));
  ASSERT_EQ(unlabelled.status, 0) << unlabelled.output;
  EXPECT_TRUE(fs::exists(dir / "scored/mil-predictions.csv"));
  EXPECT_FALSE(fs::exists(dir / "scored/slide-evaluation.json"));
}

TEST(MilCli, BadInputGetsOneLineAndWritesNothing) {
  testing::TempDir dir;
  const std::string cohort = dir / "cohort", labels = dir / "labels.csv";
  write_cohort(cohort, labels);
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"mil " + cohort + " -o " + (dir / "out"), "the slides' labels are needed to train"},
      {"mil " + cohort + " --slide-labels " + labels + " -o " + cohort, "is the cohort's folder"},
      {"mil " + (dir / "none") + " --slide-labels " + labels + " -o " + (dir / "out"),
       "not a folder"},
      {"mil " + cohort + " --apply " + labels + " -o " + (dir / "out"), "labels.csv"},
      {"mil " + cohort + " --slide-labels " + labels + " --tcga-labels -o " + (dir / "out"),
       "give one"},
      {"mil " + cohort + " --slide-labels " + labels + " --folds 1 -o " + (dir / "out"), "--folds"},
      {"mil " + cohort + " --slide-labels " + labels + " --lr nan -o " + (dir / "out"), "--lr"},
      {"mil " + cohort + " --slide-labels " + labels + " --attention 99999999 -o " + (dir / "out"),
       "--attention"},
      {"mil " + cohort + " --slide-labels " + (dir / "none.csv") + " -o " + (dir / "out"),
       "none.csv"},
      {"mil " + cohort + " --slide-labels " + labels + " --threads -1 -o " + (dir / "out"),
       "--threads"},
      {"mil " + cohort + " --slide-labels " + labels + " --threads 4096 -o " + (dir / "out"),
       "4096"}};
  for (const Case& c : cases) {
    const auto r = run(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(dir / "out")) << c.args;
  }
  // A model over other features is refused by width.
  AttentionMil other = AttentionMil::initial(5, 4, 1);
  save_attention_mil(dir / "other.safetensors", other, {});
  const auto r =
      run("mil " + cohort + " --apply " + (dir / "other.safetensors") + " -o " + (dir / "out"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("reads features 5 wide, the cohort's are 6"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace histocnn
