// `histocnn slide --mil MODEL` end to end: a tile model, four synthetic
// slides scored with --features, `histocnn mil` trained on them, and the
// slide model applied to the slides in one `histocnn slide` run. Each
// slide's p_mil must equal what `histocnn mil --apply` gives the same
// features; a later run without --mil leaves no stale p_mil; bad input gets
// one line and writes nothing.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_fixture.h"
#include "core/atomic_file.h"
#include "data/image.h"
#include "slide/mil_cohort.h"

namespace histocnn {
namespace {
namespace fs = std::filesystem;

class SlideMilCli : public Cli {
 protected:
  static void SetUpTestSuite() {
    Cli::SetUpTestSuite();
    auto must = [](const CommandResult& r) { ASSERT_EQ(r.status, 0) << r.output; };
    must(run(train_args() + " --epochs 3 -o " + out("model")));
    // Benign slides (seeds 1, 3) and slides half malignant (2, 4); two patients.
    std::string labels = "slide,label,patient\n";
    for (int i = 1; i <= 4; ++i) {
      const std::string name = "s" + std::to_string(i);
      must(run("synth --slide " + out("slides/" + name + ".tif") +
               " --slide-size 3000x2000 --pieces 2 --seed " + std::to_string(i) +
               " --slide-tissue " + (i % 2 ? "benign" : "mixed")));
      labels +=
          name + "," + (i % 2 ? "benign" : "malignant") + ",P" + std::to_string((i + 1) / 2) + "\n";
    }
    write_file_atomically(out("labels.csv"), labels);
  }
  static std::string model() { return out("model/model.safetensors"); }
  static std::string slide_run(const std::string& output) {
    return "slide " + model() + " " + out("slides") + " -o " + out(output) +
           " --threads 1 --no-progress --slide-labels " + out("labels.csv");
  }
};

// mil-predictions.csv's p_mil per slide.
std::map<std::string, double> mil_predictions(const std::string& path) {
  std::istringstream in(read_file(path));
  std::string line;
  std::getline(in, line);  // slide,patient,label,fold,tiles,p_mil,...
  std::map<std::string, double> p;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    p[cells.at(0)] = std::stod(cells.at(5));
  }
  return p;
}

TEST_F(SlideMilCli, TheSlideModelScoresEachSlideAsMilApplyDoes) {
  ASSERT_EQ(run(slide_run("cohort") + " --features").status, 0);
  const CommandResult trained = run("mil " + out("cohort") + " --slide-labels " +
                                    out("labels.csv") + " -o " + out("mil") + " --folds 2");
  ASSERT_EQ(trained.status, 0) << trained.output;
  const std::string mil = out("mil/mil.safetensors");
  ASSERT_EQ(run("mil " + out("cohort") + " --apply " + mil + " -o " + out("applied")).status, 0);
  const std::map<std::string, double> applied = mil_predictions(out("applied/mil-predictions.csv"));

  const CommandResult r = run(slide_run("scored") + " --mil " + mil);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(", slide model P(malignant) "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(", features.safetensors, attention.png)"), std::string::npos) << r.output;
  for (int i = 1; i <= 4; ++i) {
    const std::string name = "s" + std::to_string(i);
    const auto s = nlohmann::json::parse(read_file(out("scored/" + name + "/summary.json")));
    ASSERT_TRUE(s["p_mil"].is_number()) << s.dump();
    EXPECT_NEAR(s["p_mil"].get<double>(), applied.at(name), 1e-6) << name;
    EXPECT_EQ(s["mil"]["model"], mil);
    EXPECT_EQ(s["mil"]["tiles"], s["tiles_scored"]);
    ASSERT_EQ(s["mil"]["top_tiles"].size(), 5u);
    EXPECT_GE(s["mil"]["top_tiles"][0]["attention"].get<double>(),
              s["mil"]["top_tiles"][4]["attention"].get<double>());
    for (const char* f : {"attention.csv", "attention.png", "features.safetensors"})
      EXPECT_TRUE(fs::exists(out("scored/" + name + "/" + f))) << name << " " << f;
  }
  const std::string table = read_file(out("scored/slides.csv"));
  EXPECT_EQ(table.substr(0, table.find('\n')),
            "slide,status,tiles,tissue_mm2,malignant_area_fraction,p_mean,p_max,p_top_mean,"
            "focus_median,out_of_focus_fraction,folder,label,p_mil");
  const auto e = nlohmann::json::parse(read_file(out("scored/slide-evaluation.json")));
  EXPECT_TRUE(e["by_score"].contains("mil")) << e.dump();
  EXPECT_EQ(e["by_score"].size(), 5u);

  // Called by the slide model, then a run without it: no stale answer left.
  const CommandResult by_mil = run(slide_run("scored") + " --mil " + mil + " --slide-score mil");
  ASSERT_EQ(by_mil.status, 0) << by_mil.output;
  EXPECT_NE(by_mil.output.find("slide level (mil, 4 slides, 2 malignant)"), std::string::npos)
      << by_mil.output;
  // Scored with TTA, a model trained on single views' features is used
  // with a warning.
  const CommandResult tta = run(slide_run("tta") + " --mil " + mil + " --tta");
  ASSERT_EQ(tta.status, 0) << tta.output;
  EXPECT_NE(tta.output.find("warning: --mil " + mil +
                            ": trained on features of single views, now averaged over 8 (--tta); "
                            "its P may shift (score without --tta to match)\n"),
            std::string::npos)
      << tta.output;
  ASSERT_EQ(run(slide_run("scored") + " --features").status, 0);
  const auto plain = nlohmann::json::parse(read_file(out("scored/s2/summary.json")));
  EXPECT_FALSE(plain.contains("p_mil")) << plain.dump();
  EXPECT_FALSE(plain.contains("mil")) << plain.dump();
  EXPECT_FALSE(fs::exists(out("scored/s2/attention.png")));
  EXPECT_FALSE(fs::exists(out("scored/s2/attention.csv")));

  // Glass: no tiles, so no P and no map, and the slide's line says neither.
  Image glass;
  glass.width = 1200, glass.height = 900;
  glass.rgb.assign(size_t(1200 * 900 * 3), 245);
  save_image(out("glass.png"), glass);
  const CommandResult empty = run("slide " + model() + " " + out("glass.png") + " --mpp 0.5 -o " +
                                  out("glass") + " --no-progress --mil " + mil);
  ASSERT_EQ(empty.status, 0) << empty.output;
  EXPECT_EQ(empty.output.find("attention.png"), std::string::npos) << empty.output;
  EXPECT_EQ(empty.output.find("slide model P"), std::string::npos) << empty.output;
  const auto g = nlohmann::json::parse(read_file(out("glass/glass/summary.json")));
  EXPECT_TRUE(g["p_mil"].is_null()) << g.dump();
  EXPECT_EQ(g["mil"]["tiles"], 0);
  EXPECT_FALSE(fs::exists(out("glass/glass/attention.csv")));
}

TEST_F(SlideMilCli, BadSlideModelsGetOneLineAndNothingIsScored) {
  AttentionMil other = AttentionMil::initial(5, 4, 1);
  save_attention_mil(out("other.safetensors"), other, {{"min_focus", 0}});
  struct Case {
    std::string flags, message;
  };
  const std::vector<Case> cases = {
      {" --mil " + out("other.safetensors"),
       "--mil " + out("other.safetensors") +
           ": reads tile features 5 wide; the tile models give "
           "64"},
      {" --slide-score mil", "--slide-score mil: needs a slide model (--mil MODEL)"},
      {" --mil " + out("none.safetensors"), "none.safetensors"},
      {" --mil " + out("labels.csv"), "labels.csv"},
      {" --mil " + model(), "not an attention MIL model"}};
  for (const Case& c : cases) {
    const CommandResult r = run(slide_run("bad") + c.flags);
    EXPECT_NE(r.status, 0) << c.flags;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.flags << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(out("bad"))) << c.flags;
  }
}

}  // namespace
}  // namespace histocnn
