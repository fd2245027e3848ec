// gpu-check.sh's accuracy stage (issue 18, item 4: each training precision's
// GlaS image accuracy within 1 point of fp32's) and its report,
// bench/gpu_accuracy_report.py. They run once, on a GPU machine: here the
// report is checked on made-up folds, and the stage end to end with a
// stand-in that trains on the CPU (its "precisions" are all fp32).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::CommandResult;
using testing::run_raw;

const std::string kSource = HISTOCNN_SOURCE_DIR;

// One fold's eval.json as cross_validate.sh's eval writes it (the fields the
// report reads), and its training time.
void write_fold(const std::string& dir, int fold, double image, double seconds) {
  const std::string folder = dir + "/fold" + std::to_string(fold);
  std::filesystem::create_directories(folder);
  char json[400];
  std::snprintf(json, sizeof json,
                R"({"per_image": {"accuracy": %g, "balanced_accuracy": %g, "auc": 0.99},
                   "per_crop": {"accuracy": 0.9, "balanced_accuracy": 0.9, "auc": 0.95},
                   "per_patient": {"accuracy": 1.0, "balanced_accuracy": 1.0, "auc": null}})",
                image, image);
  write_file_atomically(folder + "/eval.json", json);
  write_file_atomically(folder + "/train_seconds", std::to_string(int(seconds)) + "\n");
}

// Means over the folds every precision finished, the gap to fp32 in points,
// and a verdict per precision against the 1-point bound.
TEST(GpuAccuracyReport, ComparesEachPrecisionWithFp32OverTheFoldsAllFinished) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  for (int f = 0; f < 3; ++f) write_fold(dir / "fp32", f, 0.90 + 0.01 * f, 20);
  for (int f = 0; f < 3; ++f) write_fold(dir / "bf16", f, 0.905 + 0.01 * f, 12);
  for (int f = 0; f < 2; ++f) write_fold(dir / "tf32", f, 0.87 + 0.01 * f, 15);  // cut short
  std::filesystem::create_directories(dir / "tf32/fold2");                       // no eval.json
  const CommandResult r =
      run_raw("python3 " + kSource + "/bench/gpu_accuracy_report.py " + (dir / ""));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Folds every precision finished: 0, 1 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| fp32 | 0.905 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| bf16 | 0.910 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| tf32 | 0.875 |"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("- bf16: image accuracy +0.5 points from fp32's: within"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("- tf32: image accuracy -3.0 points from fp32's: **outside**"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(
      run_raw("python3 " + kSource + "/bench/gpu_accuracy_report.py " + (dir / "none")).status, 1)
      << "no folder of results is an error";
}

// A folder of links to every program on PATH but `program`: a PATH for a
// machine without it (GPU nodes' images often lack gnuplot).
std::string path_without(const std::string& program, const std::string& folder) {
  namespace fs = std::filesystem;
  fs::create_directories(folder);
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d.empty() ? "." : d, ec)) {
      const std::string name = e.path().filename().string();
      if (name != program && !fs::exists(fs::symlink_status(folder + "/" + name)))
        fs::create_symlink(e.path(), folder + "/" + name, ec);
    }
  }
  return folder;
}

// histocnn on the CPU behind the GPU flags: --device cuda becomes cpu, the
// precision is dropped (every "precision" is then fp32: the same models).
const char* kStandIn = R"sh(#!/usr/bin/env bash
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) args+=(--device cpu); shift ;;
    --precision) shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
exec )sh" HISTOCNN_BINARY R"sh( "${args[@]}"
)sh";

// The stage end to end on a small GlaS-like folder: each precision's folds
// train and evaluate through cross_validate.sh, accuracy.md compares them;
// without a GlaS folder the stage says it is skipped.
TEST(GpuAccuracyStage, CrossValidatesEachPrecisionAndReports) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  const std::string stand_in = dir / "histocnn";
  write_file_atomically(stand_in, kStandIn);
  std::filesystem::permissions(stand_in, std::filesystem::perms::owner_all);
  const std::string glas = dir / "glas";
  ASSERT_EQ(testing::run("synth -o " + glas + " --images 16 --seed 3").status, 0);
  const std::string script = kSource + "/scripts/gpu-check.sh";
  const std::string env = "HISTOCNN=" + stand_in + " HISTOCNN_GLAS_DIR=" + glas +
                          " ACCURACY_FOLDS=2 ACCURACY_PRECISIONS='fp32 bf16' "
                          "ACCURACY_FLAGS='--size 32 --crop 64 --epochs 1 --batch 8 "
                          "--crops-benign 10 --crops-malignant 10 --threads 1' ";
  const CommandResult r = run_raw(env + script + " " + (dir / "out") + " accuracy");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string report = read_file(dir / "out/accuracy.md");
  EXPECT_NE(report.find("Folds every precision finished: 0, 1 "), std::string::npos) << report;
  EXPECT_NE(report.find("| fp32 |"), std::string::npos) << report;
  EXPECT_NE(report.find("- bf16: image accuracy +0.0 points from fp32's: within"),
            std::string::npos)
      << report;
  EXPECT_NE(r.output.find("accuracy-bf16 rc   0"), std::string::npos) << r.output;

  const CommandResult skipped =
      run_raw("HISTOCNN_GLAS_DIR= " + script + " " + (dir / "out2") + " accuracy");
  EXPECT_NE(skipped.output.find("accuracy: skipped: HISTOCNN_GLAS_DIR=''"), std::string::npos)
      << skipped.output;

  // A GPU node's image without gnuplot, where eval -o refuses to start: the
  // folds are evaluated without figures, and the stage reports as ever.
  const std::string bin = path_without("gnuplot", dir / "bin");
  const CommandResult plain = run_raw("env PATH=" + bin + " " + env + "ACCURACY_PRECISIONS=fp32 " +
                                      script + " " + (dir / "out3") + " accuracy");
  ASSERT_EQ(plain.status, 0) << plain.output;
  EXPECT_NE(plain.output.find("accuracy-fp32 rc   0"), std::string::npos) << plain.output;
  EXPECT_NE(read_file(dir / "out3/accuracy/fp32/fold1.log").size(), 0u);
  EXPECT_TRUE(std::filesystem::exists(dir / "out3/accuracy/fp32/fold1/eval.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out3/accuracy/fp32/fold1/eval.roc.png"));
  EXPECT_NE(read_file(dir / "out3/accuracy.md").find("| fp32 |"), std::string::npos);
}

}  // namespace
}  // namespace histocnn
