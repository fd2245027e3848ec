// A grade model end to end, as a user runs it: train --labels grade5 on the
// synthetic data (whose Grade.csv names the five grades), then eval and
// predict, which answer the five classes and benign/malignant from one model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_fixture.h"
#include "core/atomic_file.h"
#include "nn/safetensors.h"

namespace histocnn {
namespace {

std::vector<std::string> split(const std::string& line, char by) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string f; std::getline(in, f, by);) fields.push_back(f);
  return fields;
}

class CliGrades : public Cli {};  // its own suite, and so its own dataset

TEST_F(CliGrades, AGradeModelAnswersFiveClassesAndBenignOrMalignant) {
  const std::string run_dir = out("grade5");
  const CommandResult trained =
      run("train --data " + data() +
          " --labels grade5 --size 32 --crop 96 --batch 20 --crops-per-class 40 --folds 4 "
          "--fold 1 --threads 1 --no-progress --seed 3 --epochs 2 --label-smoothing 0.1 "
          "--smooth-to neighbours -o " +
          run_dir);
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_NE(trained.output.find("5-class image acc"), std::string::npos) << trained.output;
  // The model records its classes in order, which are malignant, and the
  // crops each class got.
  const SafetensorsFile file = read_safetensors(run_dir + "/model.safetensors");
  const auto classes = nlohmann::json::parse(file.metadata.at("histocnn.classes"));
  EXPECT_EQ(classes["labels"], "grade5");
  ASSERT_EQ(classes["classes"].size(), 5u);
  EXPECT_EQ(classes["classes"][3], "moderately-to-poorly differentiated");
  EXPECT_EQ(classes["malignant"], nlohmann::json({false, false, true, true, true}));
  const auto recipe = nlohmann::json::parse(file.metadata.at("histocnn.trained"));
  EXPECT_EQ(recipe["class_crops"], nlohmann::json({40, 40, 40, 40, 40}));
  EXPECT_EQ(recipe["labels"], "grade5");
  EXPECT_NEAR(recipe["label_smoothing"].get<double>(), 0.1, 1e-7);
  EXPECT_EQ(recipe["smooth_to"], "neighbours");
  // Calibrated in two parts: the benign/malignant log-odds, then the grades
  // within each side (train/temperature.h), both recorded with their fits.
  ASSERT_TRUE(recipe.contains("calibration")) << recipe.dump(1);
  EXPECT_EQ(recipe["calibration"]["method"], "grouped") << recipe.dump(1);
  EXPECT_TRUE(recipe["calibration"]["temperature"].is_number()) << recipe.dump(1);
  EXPECT_TRUE(recipe["calibration"]["within"]["temperature"].is_number()) << recipe.dump(1);
  EXPECT_NE(trained.output.find(", within "), std::string::npos) << trained.output;

  const std::string report = out("grade5-eval.json");
  const CommandResult eval =
      run("eval --data " + data() + " -m " + run_dir + "/model.safetensors -o " + report);
  ASSERT_EQ(eval.status, 0) << eval.output;
  EXPECT_NE(eval.output.find("5 classes"), std::string::npos) << eval.output;
  EXPECT_NE(eval.output.find("kappa"), std::string::npos) << eval.output;
  const auto j = nlohmann::json::parse(read_file(report));
  EXPECT_EQ(j["classes"]["names"].size(), 5u);
  EXPECT_TRUE(j["classes"]["per_image"].contains("quadratic_kappa"));
  EXPECT_EQ(j["classes"]["per_image"]["confusion"].size(), 5u);
  EXPECT_TRUE(j["per_image"].contains("auc")) << "the binary view is reported too";
  const std::string stem = out("grade5-eval");
  EXPECT_TRUE(std::filesystem::exists(stem + ".classes.confusion.png"));
  // One one-vs-rest curve per class present with others absent (each a data
  // block of the .dat), titled with its AUC.
  EXPECT_TRUE(std::filesystem::exists(stem + ".classes.roc.png"));
  const std::string roc = read_file(stem + ".classes.roc.dat");
  EXPECT_NE(roc.find("# healthy\n"), std::string::npos) << roc;
  EXPECT_NE(read_file(stem + ".classes.roc.png.gp").find("AUC "), std::string::npos);
  const std::string images = read_file(stem + ".images.csv");
  EXPECT_NE(images.find(",class,predicted_class,p_healthy,"), std::string::npos) << images;

  // predict: one row per image; its class probabilities sum to 1 and its
  // P(malignant) is the sum of the three adenocarcinoma grades'.
  const CommandResult predicted = run("predict -m " + run_dir + "/model.safetensors " + data() +
                                      "/train_1.png " + data() + "/train_3.png");
  ASSERT_EQ(predicted.status, 0) << predicted.output;
  const auto lines = split(predicted.output, '\n');
  ASSERT_GE(lines.size(), 3u) << predicted.output;
  const auto header = split(lines[0], ',');
  ASSERT_EQ(header.size(), 10u) << lines[0];
  EXPECT_EQ(header[4], "class");
  EXPECT_EQ(header[9], "p_poorly differentiated");
  for (size_t row = 1; row < 3; ++row) {
    const auto fields = split(lines[row], ',');
    ASSERT_EQ(fields.size(), 10u) << lines[row];
    double total = 0, malignant = 0;
    for (size_t k = 5; k < 10; ++k) total += std::stod(fields[k]);
    for (size_t k = 7; k < 10; ++k) malignant += std::stod(fields[k]);
    EXPECT_NEAR(total, 1.0, 1e-4) << lines[row];
    EXPECT_NEAR(std::stod(fields[1]), malignant, 1e-4) << lines[row];
  }
}

// The grade preset brings the ordinal loss (docs/results/glas-grade-cv.md),
// and an explicit flag still wins over it (--crop 128 too: the fixture's
// images are smaller than the preset's 400-px crop).
TEST_F(CliGrades, TheGradePresetTrainsWithTheOrdinalLoss) {
  const std::string args =
      "train --data " + data() +
      " --preset grade --crop 128 --size 32 --batch 20 --crops-per-class 8 --epochs 1 "
      "--folds 4 --fold 1 --threads 1 --no-progress ";
  const CommandResult preset = run(args + "-o " + out("preset-grade"));
  ASSERT_EQ(preset.status, 0) << preset.output;
  const auto recipe = nlohmann::json::parse(
      read_safetensors(out("preset-grade/model.safetensors")).metadata.at("histocnn.trained"));
  EXPECT_EQ(recipe["preset"], "grade");
  EXPECT_EQ(recipe["labels"], "grade5");
  EXPECT_NEAR(recipe["label_smoothing"].get<double>(), 0.2, 1e-7);
  EXPECT_EQ(recipe["smooth_to"], "neighbours");
  // The preset evaluates with TTA, so its temperatures are fitted on TTA
  // predictions; scoring single views under them earns a warning.
  EXPECT_EQ(recipe["calibration"]["tta"], true) << recipe.dump(1);
  const std::string eval = "eval --data " + data() + " --threads 1 --bootstrap 0 --no-figures -m " +
                           out("preset-grade/model.safetensors");
  const CommandResult served = run(eval);
  ASSERT_EQ(served.status, 0) << served.output;
  EXPECT_EQ(served.output.find("warning: the model's temperature"), std::string::npos)
      << served.output;
  const CommandResult single = run(eval + " --no-tta");
  ASSERT_EQ(single.status, 0) << single.output;
  EXPECT_NE(single.output.find("warning: the model's temperature was fitted on TTA predictions "
                               "and these are single views: its probabilities will be "
                               "overconfident"),
            std::string::npos)
      << single.output;
  const CommandResult raw = run(eval + " --no-tta --no-calibration");
  EXPECT_EQ(raw.output.find("warning: the model's temperature"), std::string::npos) << raw.output;
  const CommandResult plain_run = run(args + "--label-smoothing 0 -o " + out("preset-grade-plain"));
  ASSERT_EQ(plain_run.status, 0) << plain_run.output;
  const auto plain =
      nlohmann::json::parse(read_safetensors(out("preset-grade-plain/model.safetensors"))
                                .metadata.at("histocnn.trained"));
  EXPECT_EQ(plain["label_smoothing"].get<double>(), 0.0);
}

}  // namespace
}  // namespace histocnn
