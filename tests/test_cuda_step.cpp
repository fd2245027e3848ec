// The CUDA step on a real GPU. Every test skips, saying why, on a machine
// without a CUDA device (or a build without the CUDA backend); on a GPU
// machine they run with the rest of ctest.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "backends/backend.h"
#include "backends/cuda/cuda_schedule.h"
#include "core/error.h"
#include "memory/memory_engine.h"
#include "test_util.h"
#include "train/selftest.h"

namespace histocnn {
namespace {

bool have_gpu(std::string* why) {
  if (!cuda_backend_built()) {
    *why = "this build has no CUDA backend";
    return false;
  }
  const auto d = available_devices();
  if (std::find(d.begin(), d.end(), "cuda") == d.end()) {
    try {
      make_backend(select_device("cuda"));
    } catch (const Error& e) {
      *why = e.what();
    }
    return false;
  }
  return true;
}

#define REQUIRE_GPU()                         \
  do {                                        \
    std::string why;                          \
    if (!have_gpu(&why)) GTEST_SKIP() << why; \
  } while (0)

struct CompiledStep {
  std::unique_ptr<MemoryEngine> engine;
  std::unique_ptr<TrainingStep> step;
};

// `adjust` sets the step's options beyond the defaults (graphs, precision,
// the graph API); `limit` emulates a smaller device ("" for none).
CompiledStep compile(const std::string& device, const std::string& allocator,
                     const NetworkShape& shape,
                     const std::function<void(StepOptions&)>& adjust = {},
                     const std::string& limit = "") {
  MemoryEngineOptions mo;
  mo.device = select_device(device);
  mo.config.allocator = allocator;
  mo.config.gpu_mem_pool = 0.25;
  if (!limit.empty()) mo.limit_bytes = parse_byte_size(limit, "limit");
  CompiledStep r;
  r.engine = std::make_unique<MemoryEngine>(mo);
  StepOptions so;
  so.dropout_seed = 21;
  so.device.memory = &r.engine->resource();
  so.device.planned = r.engine->planned();
  if (adjust) adjust(so);
  r.step = make_backend(mo.device)->compile(default_model_spec(), shape, so);
  r.step->set_parameters(Parameters::glorot(shape, 3));
  return r;
}

TEST(CudaStep, EveryLayerMatchesTheCpuBackendAndAllocatorsGiveIdenticalWeights) {
  REQUIRE_GPU();
  SelfTestOptions o;
  o.device = "cuda";
  o.width = o.height = 64;
  o.batch = 16;
  const SelfTestReport report = run_selftest(o);
  EXPECT_TRUE(report.passed) << report.table();
}

// --cudnn-graph: the convolutions through cuDNN's graph API (where it offers
// an allowed engine; legacy calls elsewhere) pass the same self-test, and
// every layer's record says which API each direction took.
TEST(CudaStep, GraphApiConvolutionsMatchTheCpuBackend) {
  REQUIRE_GPU();
  SelfTestOptions o;
  o.device = "cuda";
  o.width = o.height = 64;
  o.batch = 16;
  o.allocators = {"plan", "pool"};
  o.cudnn_graph = true;
  const SelfTestReport report = run_selftest(o);
  EXPECT_TRUE(report.passed) << report.table();
  const NetworkShape shape = infer_shapes(default_model_spec(), 8, 64, 64);
  const CompiledStep graph =
      compile("cuda", "plan", shape, [](StepOptions& so) { so.cudnn_graph = true; });
  const auto algorithms = graph.step->details()["algorithms"];
  ASSERT_EQ(algorithms.size(), shape.convs.size());
  for (const auto& layer : algorithms) EXPECT_TRUE(layer.contains("graph")) << layer.dump();
}

// --channels-last: the NHWC maps and KRSC filters pass the same self-test
// (fp32 and bf16 rows, every allocator), and the layer records say so.
TEST(CudaStep, ChannelsLastMatchesTheCpuBackend) {
  REQUIRE_GPU();
  SelfTestOptions o;
  o.device = "cuda";
  o.width = o.height = 64;
  o.batch = 16;
  o.channels_last = true;
  const SelfTestReport report = run_selftest(o);
  EXPECT_TRUE(report.passed) << report.table();
  const NetworkShape shape = infer_shapes(default_model_spec(), 8, 64, 64);
  const CompiledStep last =
      compile("cuda", "plan", shape, [](StepOptions& so) { so.channels_last = true; });
  EXPECT_TRUE(last.step->details()["channels_last"].get<bool>());
  for (const auto& layer : last.step->details()["algorithms"])
    EXPECT_EQ(layer["layout"], "channels last (NHWC)") << layer.dump();
}

// A grade model's five-class softmax (the loss kernel over K classes).
TEST(CudaStep, FiveClassNetworkMatchesTheCpuBackend) {
  REQUIRE_GPU();
  SelfTestOptions o;
  o.device = "cuda";
  o.spec = with_classes(default_model_spec(), 5);
  o.width = o.height = 48;
  o.batch = 12;
  o.allocators = {"plan"};
  const SelfTestReport report = run_selftest(o);
  EXPECT_TRUE(report.passed) << report.table();
  o.label_smoothing = {0.2f, true};  // the loss kernel's smoothed targets
  const SelfTestReport smoothed = run_selftest(o);
  EXPECT_TRUE(smoothed.passed) << smoothed.table();
}

TEST(CudaStep, BatchNormAndGlobalPoolingMatchTheCpuBackend) {
  REQUIRE_GPU();
  for (const auto& c : testing::batch_norm_architectures()) {
    SelfTestOptions o;
    o.device = "cuda";
    o.spec = parse_model_spec(c.spec);
    o.width = c.width, o.height = c.height;
    o.batch = c.batch;
    const SelfTestReport report = run_selftest(o);
    EXPECT_TRUE(report.passed) << c.name << "\n" << report.table();
    // Channels last: batch norm as our kernels in fp32 and bf16.
    if (!cuda::channels_last_unsupported(infer_shapes(o.spec, c.batch, c.height, c.width)).empty())
      continue;
    o.channels_last = true;
    const SelfTestReport last = run_selftest(o);
    EXPECT_TRUE(last.passed) << c.name << " channels last\n" << last.table();
  }
}

class CudaStepPrecision : public ::testing::TestWithParam<std::string> {};

// fp32, bf16 and bf16 channels last (in a captured graph: the bf16 weight
// copy and the KRSC filters are refreshed after Adam inside it) train the
// same separable data to the CPU's loss.
TEST_P(CudaStepPrecision, ShortTrainingReachesTheCpuLoss) {
  REQUIRE_GPU();
  const std::string precision = GetParam();
  const NetworkShape shape = infer_shapes(default_model_spec(), 32, 64, 64);
  CompiledStep cpu = compile("cpu", "plan", shape);
  CompiledStep gpu = compile("cuda", "plan", shape, [&](StepOptions& so) {
    so.cuda_graphs = precision != "fp32";  // bf16 in a captured graph
    so.precision = precision == "bf16-channels-last" ? "bf16" : precision;
    // the KRSC filters are rewritten after Adam inside the captured graph
    so.channels_last = precision == "bf16-channels-last";
  });
  Rng rng(8);
  double cpu_loss = 0, gpu_loss = 0;
  for (int s = 0; s < 60; ++s) {
    // Two separable classes: bright vs dark images.
    std::vector<float> images(size_t(32) * 3 * 64 * 64);
    std::vector<int32_t> labels(32);
    for (int i = 0; i < 32; ++i) {
      labels[size_t(i)] = int32_t(rng.below(2));
      for (int p = 0; p < 3 * 64 * 64; ++p)
        images[size_t(i) * 3 * 64 * 64 + size_t(p)] =
            float(rng.uniform(0, 1)) + (labels[size_t(i)] ? 0.5f : -0.5f);
    }
    const StepResult c = cpu.step->train(images.data(), labels.data(), 32);
    gpu.step->train(images.data(), labels.data(), 32);
    if (s >= 50) cpu_loss += c.loss_sum;
    if (s == 49) gpu.step->take_results();  // drop the first 50 steps' sums
  }
  gpu_loss = gpu.step->take_results().loss_sum;  // the last 10 steps
  EXPECT_LT(cpu_loss / (10 * 32), 0.2);
  EXPECT_LT(gpu_loss / (10 * 32), 0.2);
  EXPECT_NEAR(gpu_loss, cpu_loss, (precision == "fp32" ? 0.05 : 0.2) * cpu_loss + 0.01)
      << "same data, same initial weights";
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaStepPrecision,
                         ::testing::Values("fp32", "bf16", "bf16-channels-last"));

TEST(CudaStep, GraphReplayEqualsEagerExecution) {
  REQUIRE_GPU();
  const NetworkShape shape = infer_shapes(default_model_spec(), 8, 48, 48);
  CompiledStep eager = compile("cuda", "plan", shape);
  CompiledStep graph =
      compile("cuda", "plan", shape, [](StepOptions& so) { so.cuda_graphs = true; });
  const auto images = testing::random_vector(size_t(8) * 3 * 48 * 48, 4, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 0, 1, 1, 0, 0, 1};
  for (int s = 0; s < 5; ++s) {
    eager.step->train(images.data(), labels.data(), 8);
    graph.step->train(images.data(), labels.data(), 8);
  }
  EXPECT_EQ(eager.step->take_results().loss_sum, graph.step->take_results().loss_sum);
  EXPECT_EQ(eager.step->parameters().values, graph.step->parameters().values);
}

TEST(CudaStep, OutOfMemoryNamesTheNumbersAndTheLargestBatch) {
  REQUIRE_GPU();
  const NetworkShape shape = infer_shapes(default_model_spec(), 150, 200, 200);
  try {
    compile("cuda", "plan", shape, {}, "64MB");
    FAIL() << "expected OutOfMemory under a 64 MB limit";
  } catch (const OutOfMemory& e) {
    const std::string what = e.what();
    for (const char* part : {"requested", "reserved", "in use", "largest free block",
                             "fragmentation", "largest batch"})
      EXPECT_NE(what.find(part), std::string::npos) << part << " missing from: " << what;
  }
}

}  // namespace
}  // namespace histocnn
