// What a benchmark epoch trains on (study/bench_examples.h): the study's
// synthetic tissue crops by default, random pixels on request, each the
// paper's counts of each class and the same pixels run to run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "study/bench_examples.h"

namespace histocnn {
namespace {

int count_label(const ExampleSet& set, int label) {
  return int(std::count_if(set.examples.begin(), set.examples.end(),
                           [&](const Example& e) { return e.label == label; }));
}

TEST(BenchExamples, TissueIsTheStudysCropsAndRandomIsNoise) {
  const ExampleSet tissue = bench_examples("tissue", 32, 5, 7);
  EXPECT_EQ(tissue.width, 32);
  EXPECT_EQ(tissue.height, 32);
  ASSERT_EQ(tissue.examples.size(), 12u);
  EXPECT_EQ(count_label(tissue, 0), 5);
  EXPECT_EQ(count_label(tissue, 1), 7);
  ASSERT_EQ(tissue.pixels.size(), size_t(12) * 32 * 32 * 3);
  EXPECT_EQ(bench_examples("tissue", 32, 5, 7).pixels, tissue.pixels) << "the same run to run";
  // Crops of several images: they differ from one another.
  EXPECT_FALSE(std::equal(tissue.pixels_of(0), tissue.pixels_of(1), tissue.pixels_of(11)));
  const ExampleSet noise = bench_examples("random", 32, 5, 7);
  ASSERT_EQ(noise.pixels.size(), tissue.pixels.size());
  EXPECT_EQ(count_label(noise, 1), 7);
  EXPECT_NE(noise.pixels, tissue.pixels);
  // Neighbouring pixels of tissue are alike; of noise, not: the mean step
  // between horizontal neighbours tells them apart.
  auto roughness = [](const ExampleSet& s) {
    double sum = 0;
    for (size_t i = 3; i < s.pixels.size(); ++i)
      sum += std::abs(int(s.pixels[i]) - s.pixels[i - 3]);
    return sum / double(s.pixels.size());
  };
  EXPECT_LT(roughness(tissue), 0.5 * roughness(noise));
  try {
    bench_examples("noise", 32, 5, 7);
    ADD_FAILURE() << "an unknown kind was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--pixels noise"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace histocnn
