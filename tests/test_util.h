// Shared helpers for the tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "nn/params.h"

namespace histocnn::testing {

// The architectures every backend is held to (each layer kind alone and in
// combination, padding, odd pools, dropout, padded batches, one image).
struct Case {
  const char* name;
  const char* spec;
  int batch, height, width, count;  // compiled batch; rows used (count < batch: padded)
  bool training;                    // dropout on
};
// ctest lists the case by name, not as raw bytes.
inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}
inline std::vector<Case> architectures() {
  const char* paper =
      "conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; conv 64 kernel=3 pool=2; "
      "dense 64; dropout 0.5; dense 2";
  return {
      {"PaperNet", paper, 4, 32, 32, 4, false},
      {"PaperNetDropoutPadded", paper, 5, 36, 40, 3, true},
      {"ConvNoPool", "conv 8 kernel=3 pool=1; dense 2", 3, 10, 9, 3, false},
      {"ConvSamePadOddPool", "conv 16 kernel=5 pool=3 pad=same; conv 16 kernel=3 pool=2; dense 2",
       2, 23, 19, 2, false},
      {"DeepDense", "conv 4 kernel=3 pool=2; dense 17; dense 9; dropout 0.3; dense 2", 6, 16, 16, 6,
       true},
      {"SingleImage", "conv 32 kernel=3 pool=2; dense 2", 1, 12, 12, 1, false},
      {"FiveGrades", "conv 8 kernel=3 pool=2; dense 16; dropout 0.5; dense 5", 7, 14, 14, 6, true}};
}
// Networks with batch norm and global average pooling (training mode, full
// batches: batch norm normalises with the batch's own statistics).
inline std::vector<Case> batch_norm_architectures() {
  return {
      {"BatchNormGapNet",
       "conv 16 kernel=3 pool=2 bn; conv 16 kernel=3 pool=2 bn; conv 32 kernel=3 pool=2 bn; gap; "
       "dense 32; dropout 0.5; dense 2",
       4, 32, 32, 4, true},
      {"BatchNormFlatten", "conv 8 kernel=3 pool=2 bn; conv 8 kernel=3 pool=1; dense 2", 3, 14, 13,
       3, true},
      {"GapWithoutBatchNorm", "conv 8 kernel=5 pool=3 pad=same; gap; dense 6; dense 2", 2, 20, 17,
       2, true},
      {"BatchNormNoPoolGap", "conv 6 kernel=3 pool=1 bn; gap; dense 2", 5, 9, 9, 5, true},
      {"BatchNormGapFiveGrades", "conv 8 kernel=3 pool=2 bn; gap; dense 16; dense 5", 6, 12, 12, 6,
       true}};
}

inline std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.name;
}

// Every parameter's gradient within abs + rel * (largest |reference| of that
// tensor) of the reference's; `where` names the run in failure messages.
inline void expect_gradients_match(const Parameters& got, const Parameters& want, double abs,
                                   double rel, const std::string& where = "") {
  for (const auto& info : want.layout) {
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < info.size; ++i) {
      max_diff = std::max(max_diff, double(std::fabs(got.data(info)[i] - want.data(info)[i])));
      max_ref = std::max(max_ref, double(std::fabs(want.data(info)[i])));
    }
    EXPECT_LE(max_diff, abs + rel * max_ref)
        << info.name << " (max |ref| " << max_ref << ") " << where;
  }
}

inline std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.uniform(lo, hi));
  return v;
}

// A fresh, empty temporary folder, removed at destruction.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("histocnn_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string path() const { return path_.string(); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The message of the histocnn::Error `f` throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// `count` examples of side x side pixels, every value `value`, labels
// alternating (0, 1, 0, ...): a set whose content does not matter.
inline ExampleSet uniform_examples(int count, int side, uint8_t value) {
  ExampleSet set;
  set.width = set.height = side;
  for (int i = 0; i < count; ++i) set.examples.push_back({0, i % 2, 0, 0});
  set.pixels.assign(size_t(count) * size_t(side) * size_t(side) * 3, value);
  return set;
}

}  // namespace histocnn::testing
