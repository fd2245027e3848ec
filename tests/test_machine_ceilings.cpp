// The machine's ceilings (study/machine_ceilings.h) on small problems: the
// rates are measured (positive, one per run), the best is the best, and bad
// arguments are refused.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "study/machine_ceilings.h"

namespace histocnn {
namespace {

TEST(MachineCeilings, SgemmGivesOneRatePerRun) {
  const std::vector<double> rates = sgemm_gflops(64, 3);
  ASSERT_EQ(rates.size(), 3u);
  for (double r : rates) EXPECT_GT(r, 0.0);
  EXPECT_THROW(sgemm_gflops(0, 3), Error);
  EXPECT_THROW(sgemm_gflops(64, 0), Error);
}

TEST(MachineCeilings, TriadMeasuresBandwidthOnAnyThreadCount) {
  for (int threads : {1, 3}) EXPECT_GT(triad_gbs(threads, size_t(1) << 16, 2), 0.0) << threads;
  EXPECT_THROW(triad_gbs(0), Error);
  EXPECT_THROW(triad_gbs(4, 3), Error);  // fewer floats than threads
}

TEST(MachineCeilings, RecordHoldsTheBestSgemmRunAndTheTriad) {
  const nlohmann::json c = measure_ceilings(2, 64, size_t(1) << 16);
  EXPECT_EQ(c["threads"], 2);
  EXPECT_EQ(c["sgemm_n"], 64);
  const auto all = c["sgemm_gflops_all"].get<std::vector<double>>();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(c["sgemm_gflops"].get<double>(), *std::max_element(all.begin(), all.end()));
  EXPECT_GT(c["triad_gbs"].get<double>(), 0.0);
}

}  // namespace
}  // namespace histocnn
