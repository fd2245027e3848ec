// What a run says of itself: where its files are, that a finished run has
// nothing left to do (its metrics kept), which flag a refused resume differs
// in, and a run without checkpoints; and studies sharing one cached
// synthetic dataset.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::CommandResult;
using testing::run;

class RunLines : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const CommandResult r = run("synth -o " + (*dir_ / "data") +
                                " --images 12 --per-patient 2 --width 200 --height 160 --seed 2");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string out(const std::string& name) { return *dir_ / name; }
  static std::string train(const std::string& more, const std::string& size = "32") {
    return "train --data " + out("data") + " --size " + size +
           " --crop 96 --batch 20 --crops-benign 60 --crops-malignant 60 --folds 3 "
           "--threads 1 --no-progress " +
           more;
  }
  static testing::TempDir* dir_;
};
testing::TempDir* RunLines::dir_ = nullptr;

TEST_F(RunLines, AFinishedRunHasNothingToDoAndKeepsItsMetrics) {
  const std::string folder = out("finished");
  const CommandResult first = run(train("--epochs 2 --select-by image_auc -o " + folder));
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("files in " + folder +
                              ": model.safetensors, checkpoint.safetensors, metrics.json, "
                              "model.best.safetensors"),
            std::string::npos)
      << first.output;
  const auto before = nlohmann::json::parse(read_file(folder + "/metrics.json"));
  const CommandResult again = run(train("--epochs 2 --select-by image_auc --resume -o " + folder));
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("nothing to do: " + folder +
                              "/checkpoint.safetensors is already at epoch 2 (--epochs 2"),
            std::string::npos)
      << again.output;
  EXPECT_EQ(again.output.find("epoch 1/2"), std::string::npos) << again.output;
  const auto after = nlohmann::json::parse(read_file(folder + "/metrics.json"));
  EXPECT_EQ(after["validation"], before["validation"]) << "the last validation is kept";
  EXPECT_EQ(after["history"], before["history"]);
  EXPECT_EQ(after["best"], before["best"]);
}

TEST_F(RunLines, AResumeAtAnotherSizeNamesTheFlag) {
  const std::string folder = out("sized");
  ASSERT_EQ(run(train("--epochs 1 -o " + folder)).status, 0);
  const CommandResult r = run(train("--epochs 2 --resume -o " + folder, "48"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("trained at --size 32x32, this run asks for --size 48x48"),
            std::string::npos)
      << r.output;
}

// --no-checkpoint: the model and metrics only; such a run cannot be resumed,
// and one that replaces a run (--force) leaves no checkpoint of the old one.
TEST_F(RunLines, ARunWithoutCheckpointsSaysSoAndCannotBeResumed) {
  const std::string folder = out("no-checkpoint");
  ASSERT_EQ(run(train("--epochs 1 -o " + folder)).status, 0);
  ASSERT_TRUE(std::filesystem::exists(folder + "/checkpoint.safetensors"));
  const CommandResult r = run(train("--epochs 1 --no-checkpoint --force -o " + folder));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("files in " + folder + ": model.safetensors, metrics.json"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(folder + "/checkpoint.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(folder + "/model.safetensors"));
  const CommandResult resumed = run(train("--epochs 2 --no-checkpoint --resume -o " + folder));
  EXPECT_EQ(resumed.status, 1) << resumed.output;
  EXPECT_NE(
      resumed.output.find("--no-checkpoint: a run that keeps no checkpoint cannot be resumed"),
      std::string::npos)
      << resumed.output;
}

TEST_F(RunLines, StudiesShareOneCachedSyntheticDataset) {
  const std::string env = "HISTOCNN_CACHE=" + out("cache") + " ";
  const std::string study =
      " study --sizes 32 --batches 10 --threads 1 --engines histocnn --epochs 1 --warmup 0 "
      "--crop 96 --crops-benign 20 --crops-malignant 20 --no-report -o ";
  for (const char* name : {"study1", "study2"}) {
    const CommandResult r = testing::run_raw(env + HISTOCNN_BINARY + study + out(name));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_FALSE(std::filesystem::exists(out(name) + "/synthetic")) << "a copy per study";
  }
  int datasets = 0;
  for (const auto& entry : std::filesystem::directory_iterator(out("cache"))) {
    EXPECT_EQ(entry.path().filename().string().rfind("synthetic-g", 0), 0u) << entry.path();
    EXPECT_TRUE(std::filesystem::exists(entry.path() / "Grade.csv"));
    ++datasets;
  }
  EXPECT_EQ(datasets, 1);
}

}  // namespace
}  // namespace histocnn
