// Where `histocnn study` finds its PyTorch engine (study/study.h): beside
// the executable's folder, as a relocatable package lays it out (libexec/
// and bench/ side by side) and a build folder inside the source tree does;
// else in the source tree histocnn was built from. A package carried to a
// GPU node, where that source tree is not, found no script before.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/atomic_file.h"
#include "study/study.h"
#include "test_util.h"

namespace histocnn {
namespace {

TEST(StudyScript, ThePytorchEngineIsFoundBesideTheExecutableFirst) {
  const testing::TempDir dir;
  const std::filesystem::path package = dir.path() + "/histocnn-1.0";
  std::filesystem::create_directories(package / "libexec");
  std::filesystem::create_directories(package / "bench");
  write_file_atomically((package / "bench/pytorch_train.py").string(), "# engine\n");
  EXPECT_EQ(default_pytorch_script((package / "libexec/histocnn").string(), "/src/histocnn"),
            (package / "bench/pytorch_train.py").string());
  // Nothing beside it: the source tree's.
  EXPECT_EQ(default_pytorch_script(dir.path() + "/elsewhere/bin/histocnn", "/src/histocnn"),
            "/src/histocnn/bench/pytorch_train.py");
}

}  // namespace
}  // namespace histocnn
