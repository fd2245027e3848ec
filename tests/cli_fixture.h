// The command-line suites' shared fixture: one synthetic GlaS-like dataset
// per suite (a suite deriving from Cli gets its own), the options of a short
// training on it.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "cli_util.h"
#include "test_util.h"

namespace histocnn {
namespace {  // one fixture per test file (each suite its own dataset)

using testing::CommandResult;
using testing::run;
using testing::run_raw;

// One synthetic dataset for the whole suite.
class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const CommandResult r = run("synth -o " + data() +
                                " --images 24 --per-patient 2 --width 240 --height 180 --seed 4");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return *dir_ / "synthetic"; }
  static std::string out(const std::string& name) { return *dir_ / name; }
  static std::string train_args() {
    return "train --data " + data() +
           " --size 32 --crop 96 --batch 20 --crops-benign 200 "
           "--crops-malignant 200 --folds 4 --fold 1 --threads 1 --no-progress --seed 3";
  }
  inline static testing::TempDir* dir_ = nullptr;
};

}  // namespace
}  // namespace histocnn
