// `histocnn memplan`: the step's memory plan and the largest batch within a
// budget, on the CPU and, without a GPU, the CUDA step's plan as the
// schedule makes it; and the allocator and device flags that need a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "backends/backend.h"
#include "cli_fixture.h"
#include "cli_util.h"

namespace histocnn {
namespace {

class CliMemplan : public Cli {};

TEST_F(CliMemplan, PrintsThePlanAndFindsTheLargestBatch) {
  CommandResult plan = run("memplan --size 64 --batch 20");
  ASSERT_EQ(plan.status, 0) << plan.output;
  EXPECT_NE(plan.output.find("conv1.pooled"), std::string::npos) << plan.output;
  EXPECT_NE(plan.output.find("peak"), std::string::npos) << plan.output;
  CommandResult fit = run("memplan --size 64 --max-batch --budget 64MB");
  ASSERT_EQ(fit.status, 0) << fit.output;
  EXPECT_NE(fit.output.find("largest batch for 64MB"), std::string::npos) << fit.output;
  // The number is the boundary: its step fits 64 MB, one more does not.
  int largest = 0;
  ASSERT_EQ(std::sscanf(fit.output.c_str() + fit.output.find(": ") + 2, "%d", &largest), 1)
      << fit.output;
  // Peaks print in the budget's units (MiB): the boundary reads as printed.
  EXPECT_NE(fit.output.find("largest batch for 64MB (64.00 MiB)"), std::string::npos) << fit.output;
  auto peak_mib = [&](int batch) {
    const CommandResult r = run("memplan --size 64 --budget 64MB --batch " + std::to_string(batch));
    double mib = 0;
    std::sscanf(r.output.c_str() + r.output.rfind("peak ") + 5, "%lf", &mib);
    EXPECT_NE(r.output.find(" MiB for 64x64"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(mib <= 64 ? "fits within --budget 64MB (64.00 MiB)"
                                      : "does not fit --budget 64MB (64.00 MiB)"),
              std::string::npos)
        << r.output;
    return mib;
  };
  EXPECT_LE(peak_mib(largest), 64);
  EXPECT_GT(peak_mib(largest + 1), 64);
  CommandResult bad = run("memplan --max-batch --budget lots");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--budget"), std::string::npos) << bad.output;
  CommandResult gpu_plan = run("memplan --device cuda --size 200 --batch 150");
  ASSERT_EQ(gpu_plan.status, 0) << gpu_plan.output;
  EXPECT_NE(gpu_plan.output.find("conv1.d_out"), std::string::npos) << gpu_plan.output;
  EXPECT_NE(gpu_plan.output.find("on cuda"), std::string::npos) << gpu_plan.output;
  // bf16 maps: a smaller peak at the same point (where no GPU answers: the schedule's plan).
  const auto here = available_devices();
  if (std::find(here.begin(), here.end(), "cuda") == here.end()) {
    CommandResult bf16_plan = run("memplan --device cuda --size 200 --batch 150 --precision bf16");
    ASSERT_EQ(bf16_plan.status, 0) << bf16_plan.output;
    EXPECT_NE(bf16_plan.output.find("input.bf16"), std::string::npos) << bf16_plan.output;
    auto printed_mib = [](const std::string& output) {
      double value = 0;
      char unit[8] = {};
      std::sscanf(output.c_str() + output.rfind("peak ") + 5, "%lf %3s", &value, unit);
      return std::string(unit) == "GiB" ? value * 1024 : value;
    };
    EXPECT_LT(printed_mib(bf16_plan.output), 0.65 * printed_mib(gpu_plan.output))
        << bf16_plan.output;
    // The arenas if our kernels win on the device: conv1's routes smaller,
    // then the later blocks' gradients from the pooled gradient no larger
    // (since the argmax flag freed the pooled maps early, the peak is not
    // theirs at 200 px: the same arena, within rounding).
    auto arena_after = [&](const char* words) {
      const size_t at = gpu_plan.output.find(words);
      EXPECT_NE(at, std::string::npos) << words << "\n" << gpu_plan.output;
      double mb = 0;
      if (at != std::string::npos)
        std::sscanf(gpu_plan.output.c_str() + gpu_plan.output.find("arena ", at) + 6, "%lf", &mb);
      return mb;
    };
    const double conv1_routes = arena_after("if conv1's own kernels win");
    const double later_routes = arena_after("and if the later blocks' weight and data gradients");
    EXPECT_GT(conv1_routes, 0);
    EXPECT_GT(later_routes, 0);
    EXPECT_LE(later_routes, conv1_routes) << gpu_plan.output;
    EXPECT_LT(conv1_routes, arena_after("arena ")) << gpu_plan.output;
  }
  CommandResult cpu_async =
      run("train --data " + data() + " -o " + out("z") + " --allocator async");
  EXPECT_NE(cpu_async.status, 0);
  EXPECT_NE(cpu_async.output.find("--allocator async: needs --device cuda"), std::string::npos)
      << cpu_async.output;
  const auto devices = available_devices();
  if (std::find(devices.begin(), devices.end(), "cuda") == devices.end()) {
    // Without a usable GPU, --device cuda says why (on a GPU machine it trains).
    CommandResult no_gpu = run("train --data " + data() + " -o " + out("g") + " --device cuda");
    EXPECT_NE(no_gpu.status, 0);
    EXPECT_TRUE(no_gpu.output.find("no CUDA device") != std::string::npos ||
                no_gpu.output.find("no CUDA backend") != std::string::npos)
        << no_gpu.output;
  }
}

}  // namespace
}  // namespace histocnn
