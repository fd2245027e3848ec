// Our kernels' variants in a CUDA contest (backends/cuda/contenders.h): a
// variant the device refuses drops out of the contest, recorded; a forced
// route whose every variant was refused is KernelRefused (the self-test's
// failure, not its skip); a failure the device cannot recover from, or out
// of memory, ends the contest. The timer and the device's check are
// stand-ins here; on a GPU they are events and cudaStreamSynchronize.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "backends/cuda/contenders.h"

namespace histocnn::cuda {
namespace {

// A timer that runs the variant once and reports `ms`: a variant refuses by
// throwing, as check_launch does after a failed launch.
Contenders::Timer fixed_timer(float ms) {
  return [ms](const std::function<void()>& run) {
    run();
    return ms;
  };
}

const std::function<void()> refused = [] {
  fail("pooled data gradient: kernel launch failed: too many resources requested for launch");
};
const std::function<void()> launches = [] {};

TEST(Contenders, ARefusedVariantDropsOutWithItsReasonAndTheOthersRun) {
  nlohmann::json times = nlohmann::json::object();
  Contenders ours("conv2's data gradient", times, fixed_timer(0.25f), [] { return true; });
  EXPECT_EQ(ours.time("histocnn_tile4", refused), -1.0f);
  EXPECT_FLOAT_EQ(ours.time("histocnn_tile2", launches), 0.25f);
  ASSERT_TRUE(times["histocnn_tile4"].is_string());
  EXPECT_NE(times["histocnn_tile4"].get<std::string>().find("failed: pooled data gradient"),
            std::string::npos);
  EXPECT_FLOAT_EQ(times["histocnn_tile2"].get<float>(), 0.25f);
  // One variant ran: a forced route has it.
  EXPECT_NO_THROW(ours.require_one_ran(true));
}

TEST(Contenders, AForcedRouteWhoseVariantsWereAllRefusedIsKernelRefused) {
  nlohmann::json times = nlohmann::json::object();
  Contenders ours("conv1's forward", times, fixed_timer(1.0f), [] { return true; });
  ours.time("histocnn_fused_1x8", refused);
  ours.time("histocnn_fused_2x32", refused);
  EXPECT_NO_THROW(ours.require_one_ran(false));  // not forced: cuDNN's route runs
  try {
    ours.require_one_ran(true);
    FAIL() << "every variant was refused";
  } catch (const KernelRefused& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("conv1's forward"), std::string::npos) << m;
    EXPECT_NE(m.find("histocnn_fused_1x8"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  // No variant timed at all (none applies): not a refusal.
  nlohmann::json none = nlohmann::json::object();
  Contenders empty("conv2's weight gradient", none, fixed_timer(1.0f), [] { return true; });
  EXPECT_NO_THROW(empty.require_one_ran(true));
}

TEST(Contenders, AFaultOrOutOfMemoryEndsTheContest) {
  nlohmann::json times = nlohmann::json::object();
  Contenders broken("conv2's data gradient", times, fixed_timer(1.0f), [] { return false; });
  EXPECT_THROW(broken.time("histocnn_tile2", refused), Error);
  EXPECT_FALSE(times.contains("histocnn_tile2"));
  Contenders ours("conv2's data gradient", times, fixed_timer(1.0f), [] { return true; });
  const std::function<void()> no_memory = [] {
    throw OutOfMemory(size_t(1) << 30, MemoryStats{}, "device pool");
  };
  EXPECT_THROW(ours.time("histocnn_tile2", no_memory), OutOfMemory);
}

}  // namespace
}  // namespace histocnn::cuda
