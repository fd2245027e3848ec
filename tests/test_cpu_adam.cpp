// The CPU step's Adam (backends/cpu/adam_kernel.h) against the reference
// update (nn/adam.h): bit for bit, through the AVX-512, AVX2 and portable code
// (each where the machine has it),
// on lengths that leave every tail and split across threads, over several
// steps, with and without weight decay, on one thread and on several.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backends/cpu/adam_kernel.h"
#include "core/rng.h"

namespace histocnn::cpu {
namespace {

struct AdamState {
  std::vector<float> w, m, v;
};

// Weights, moments and gradients spanning many magnitudes, with zero
// gradients (v stays 0: the update divides by epsilon alone).
AdamState random_state(int64_t n, Rng& rng) {
  AdamState s{std::vector<float>(size_t(n)), std::vector<float>(size_t(n), 0.0f),
              std::vector<float>(size_t(n), 0.0f)};
  for (auto& x : s.w) x = float(rng.normal());
  return s;
}
std::vector<float> random_gradient(int64_t n, Rng& rng) {
  std::vector<float> g(static_cast<size_t>(n));
  for (auto& x : g) {
    const double scale = std::pow(10.0, rng.uniform(-8, 2));
    x = rng.below(7) == 0 ? 0.0f : float(rng.normal() * scale);
  }
  return g;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The parameter: the version ("avx512", "avx2", "portable"), skipped where
// the machine runs a lesser one.
class CpuAdam : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    cap_adam(GetParam());
    if (adam_isa() != GetParam()) GTEST_SKIP() << "this machine runs Adam at " << adam_isa();
  }
  void TearDown() override { cap_adam("avx512"); }
};

TEST_P(CpuAdam, MatchesTheReferenceBitForBit) {
  AdamConfig decayed;
  decayed.weight_decay = 0.01f;
  decayed.learning_rate = 3e-3f;
  for (const AdamConfig& config : {AdamConfig{}, decayed}) {
    for (int64_t n : {1, 15, 16, 17, 33, 1000, 65537, 300001}) {
      Rng rng(uint64_t(n) * 31 + 7);
      AdamState ours = random_state(n, rng), reference = ours;
      for (int64_t t = 1; t <= 3; ++t) {
        const std::vector<float> g = random_gradient(n, rng);
        adam_update_simd(config, t, n, ours.w.data(), g.data(), ours.m.data(), ours.v.data());
        histocnn::adam_update(config, t, n, reference.w.data(), g.data(), reference.m.data(),
                              reference.v.data());
      }
      EXPECT_TRUE(same_bits(ours.w, reference.w)) << "weights, n = " << n;
      EXPECT_TRUE(same_bits(ours.m, reference.m)) << "m, n = " << n;
      EXPECT_TRUE(same_bits(ours.v, reference.v)) << "v, n = " << n;
    }
  }
}

TEST_P(CpuAdam, GivesTheSameBitsOnAnyThreadCount) {
  const int64_t n = 200003;
  Rng rng(11);
  const AdamState start = random_state(n, rng);
  const std::vector<float> g = random_gradient(n, rng);
  std::vector<AdamState> results;
  const int before = omp_get_max_threads();
  for (int threads : {1, 2, 3, 5}) {
    omp_set_num_threads(threads);
    AdamState s = start;
    adam_update_simd(AdamConfig{}, 4, n, s.w.data(), g.data(), s.m.data(), s.v.data());
    results.push_back(s);
  }
  omp_set_num_threads(before);
  for (size_t k = 1; k < results.size(); ++k) {
    EXPECT_TRUE(same_bits(results[k].w, results[0].w)) << k;
    EXPECT_TRUE(same_bits(results[k].m, results[0].m)) << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Versions, CpuAdam, ::testing::Values("avx512", "avx2", "portable"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace histocnn::cpu
