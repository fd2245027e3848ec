// The fixture of the hostile-input tables (test_hostile.cpp: files, models
// and outputs; test_hostile_flags.cpp: flag values and combinations): a
// synthetic dataset and a trained 32-px model made once per suite, and the
// runner that checks each case's answer.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "nn/safetensors.h"
#include "test_util.h"

namespace histocnn {

using testing::CommandResult;

struct HostileCase {
  std::string name;
  std::function<std::string()> command;  // makes its inputs, returns the arguments
  int status;                            // the exit status it must end with
  std::vector<std::string> words;        // in its message
  std::vector<std::string> unchanged;    // files (relative to the suite's folder)
};

class Hostile : public ::testing::Test {
 protected:
  // `histocnn synth -o d --images 24 --seed 1` and a 2-epoch 32-px model m.
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    ASSERT_EQ(run("synth -o " + path("d") +
                  " --images 24 --per-patient 2 --width 200 "
                  "--height 150 --seed 1")
                  .status,
              0);
    const CommandResult r = run("train --data " + path("d") +
                                " --size 32 --crop 96 --batch 10 --crops-benign 40 "
                                "--crops-malignant 40 --epochs 2 --threads 1 --no-progress -o " +
                                path("m"));
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string path(const std::string& name) { return *dir_ / name; }
  static CommandResult run(const std::string& args) {
    return testing::run_raw("timeout 120 " + std::string(HISTOCNN_BINARY) + " " + args);
  }
  // A small synthetic slide as a DICOM series in the folder `name`.
  static void dicom_series(const std::string& name) {
    const CommandResult r =
        run("synth --slide " + path(name) + " --slide-format dicom --slide-size 1024x768");
    ASSERT_EQ(r.status, 0) << r.output;
  }
  // m's model with its metadata or weights changed, written to `name`.
  static std::string forged(const std::string& name,
                            const std::function<void(SafetensorsFile&)>& change) {
    SafetensorsFile f = read_safetensors(path("m/model.safetensors"));
    change(f);
    write_safetensors(path(name), f);
    return path(name);
  }
  // Runs every case and checks its answer: the exit status (never 124, a
  // hang), the words of its message, no "internal error", and the files it
  // must leave as they were.
  static void expect_answers(const std::vector<HostileCase>& cases) {
    for (const HostileCase& c : cases) {
      const std::string args = c.command();
      std::map<std::string, std::string> before;
      for (const auto& f : c.unchanged) before[f] = read_file(path(f));
      const CommandResult r = run(args);
      EXPECT_EQ(r.status, c.status) << c.name << "\n" << args << "\n" << r.output;
      EXPECT_NE(r.status, 124) << c.name << ": timed out (a hang)";
      for (const auto& w : c.words)
        EXPECT_NE(r.output.find(w), std::string::npos) << c.name << ": '" << w << "' missing from\n"
                                                       << r.output;
      EXPECT_EQ(r.output.find("internal error"), std::string::npos) << c.name << "\n" << r.output;
      for (const auto& [f, content] : before)
        EXPECT_TRUE(read_file(path(f)) == content) << c.name << ": " << f << " was changed";
    }
  }
  static inline testing::TempDir* dir_ = nullptr;
};

}  // namespace histocnn
