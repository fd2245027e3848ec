// The CPU step in bf16 (--precision bf16) against its fp32 step: gradients
// within bf16's rounding of the fp32 step's, training that converges like
// fp32's, a clear refusal where the CPU has no native bf16; and the
// floating-point mode a step runs in. bf16 tests skip on a CPU without native
// bf16 (AVX512-BF16 / AMX).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "backends/cpu/winograd_pool_kernels.h"
#include "core/bf16.h"  // round_to_bf16: round to nearest even, as oneDNN converts
#include "core/error.h"
#include "core/float_mode.h"
#include "cpu_step_cases.h"

namespace histocnn {
namespace {

using cpu_step_cases::all_cases;
using cpu_step_cases::Inputs;
using cpu_step_cases::inputs_for;
using cpu_step_cases::Outcome;
using cpu_step_cases::step_on;
using testing::Case;

// Relative L2 error of every tensor of `got` against `want`.
std::map<std::string, double> relative_errors(const Parameters& got, const Parameters& want) {
  std::map<std::string, double> errors;
  for (const auto& info : want.layout) {
    double diff = 0, norm = 0;
    for (int64_t i = 0; i < info.size; ++i) {
      diff += std::pow(double(got.data(info)[i]) - want.data(info)[i], 2);
      norm += std::pow(double(want.data(info)[i]), 2);
    }
    errors[info.name] = std::sqrt(diff / std::max(norm, 1e-30));
  }
  return errors;
}

class CpuBf16 : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!cpu_supports_bf16()) GTEST_SKIP() << "no AVX512-BF16 / AMX on this CPU";
  }
};

// bf16 keeps 8 significant bits: each product is exact in fp32 accumulation,
// but activations and their gradients are rounded at every layer (relative
// error 2^-9 each), so gradients agree to a few percent of their tensor's
// largest value, and the loss to about a percent.
// How close is close enough: these small random networks are ill-conditioned
// (a max-pool whose two largest inputs are nearer than bf16's resolution
// routes its gradient elsewhere), so the yardstick is the fp32 step's own
// sensitivity — its gradient for the same images rounded to bf16. bf16
// rounds every activation, not only the input: allowed 3x that change plus
// 10% of the tensor. A wrong layout or a lost term is off by ~100%.
// The bf16 step under `options` (precision set here), whole batch and
// sliced, against the fp32 step under the same options, within the
// tolerances above; returns each run's details.
std::vector<nlohmann::json> expect_bf16_near_fp32(const Case& c, StepOptions options) {
  const Inputs in = inputs_for(c);
  options.dropout_seed = 99;
  const Outcome fp32 = step_on(c, options, in.params, in.images, in.labels);
  std::vector<float> rounded = in.images;
  for (float& x : rounded) x = round_to_bf16(x);
  const auto sensitivity =
      relative_errors(step_on(c, options, in.params, rounded, in.labels).grads, fp32.grads);
  options.precision = "bf16";
  std::vector<nlohmann::json> details;
  for (size_t budget : {size_t(0), size_t(1)}) {  // whole batch and sliced
    options.cpu_slice_bytes = budget;
    const Outcome got = step_on(c, options, in.params, in.images, in.labels);
    EXPECT_EQ(got.details["precision"], "bf16");
    const std::string where = "bf16, budget " + std::to_string(budget);
    EXPECT_NEAR(got.loss, fp32.loss, 0.02 * std::max(1.0, fp32.loss)) << where;
    double largest = 0;
    for (const auto& [name, error] : relative_errors(got.grads, fp32.grads)) {
      EXPECT_LE(error, 0.1 + 3 * sensitivity.at(name))
          << name << " (fp32 on bf16-rounded images: " << sensitivity.at(name) << ") " << where;
      largest = std::max(largest, error);
    }
    EXPECT_GT(largest, 1e-4) << "bf16 gave the fp32 gradients: not running in bf16? " << where;
    if (!c.training && !got.probs.empty()) {
      const int classes = int(got.probs.size()) / c.batch;
      for (int i = 0; i < classes * c.count; ++i)
        EXPECT_NEAR(got.probs[i], fp32.probs[i], 0.02) << i;
    }
    details.push_back(got.details);
  }
  return details;
}

TEST_P(CpuBf16, GradientsWithinBf16RoundingOfTheFp32Step) {
  expect_bf16_near_fp32(GetParam(), StepOptions{});
}

INSTANTIATE_TEST_SUITE_P(Architectures, CpuBf16, ::testing::ValuesIn(all_cases()),
                         testing::case_name);

// The later blocks' forward on our Winograd conv+ReLU+pool kernel in bf16
// (bf16 maps in and out, fp32 arithmetic; oneDNN has no bf16 Winograd): it
// runs where it runs in fp32 (3x3, 2x2 pool, no batch norm, maps where it
// pays, channels in the kernel's lanes), and the step stays within bf16's
// rounding of fp32's with it on or off (oneDNN's direct bf16 convolution).
class CpuBf16Winograd : public CpuBf16 {};

TEST_P(CpuBf16Winograd, OurForwardRunsWhereItAppliesWithinBf16Rounding) {
  const Case& c = GetParam();
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  const int lanes = cpu::winograd_pool_isa() == "avx512" ? 16 : 8;
  int ours_ran = 0;
  for (bool own : {true, false}) {
    StepOptions options;
    options.cpu_own_winograd_forward = own;
    for (const nlohmann::json& details : expect_bf16_near_fp32(c, options))
      for (size_t k = 1; k < shape.convs.size(); ++k) {
        const ConvShape& s = shape.convs[k];
        const std::string name = "conv" + std::to_string(k + 1);
        const std::string impl = details["convolution"][name];
        const bool expect = own && own_winograd_pays(s) && s.kernel == 3 && s.pool == 2 &&
                            !s.batch_norm && s.in_c % lanes == 0 && s.out_c % lanes == 0 &&
                            cpu::winograd_pool_available();
        EXPECT_EQ(impl.rfind("histocnn Winograd F(4x4,3x3)+ReLU+pool", 0) == 0, expect)
            << name << ": " << impl << (own ? ", ours asked for" : ", ours off");
        ours_ran += expect;
      }
  }
  if (std::string(c.name) != "BatchNormDropout") {  // its only later block has batch norm
    EXPECT_GT(ours_ran, 0) << "our bf16 Winograd never ran";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuBf16Winograd,
                         ::testing::ValuesIn(cpu_step_cases::winograd_cases()), testing::case_name);

TEST(Bf16Training, ConvergesLikeFp32OnAFixedBatch) {
  if (!cpu_supports_bf16()) GTEST_SKIP() << "no AVX512-BF16 / AMX on this CPU";
  const ModelSpec spec =
      parse_model_spec("conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; dense 64; dense 2");
  const NetworkShape shape = infer_shapes(spec, 8, 32, 32);
  const auto images = testing::random_vector(8 * 3 * 32 * 32, 21, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 0, 1, 1, 0, 1, 0};
  std::vector<double> losses[2];
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    StepOptions options;
    options.precision = bf16 ? "bf16" : "fp32";
    auto step = make_backend(cpu_device())->compile(spec, shape, options);
    step->set_parameters(Parameters::glorot(shape, 1));
    for (int i = 0; i < 40; ++i)
      losses[bf16].push_back(step->train(images.data(), labels.data(), 8).loss_sum / 8);
    // The master weights stay fp32 (not rounded to bf16's 16 upper bits).
    const Parameters p = step->parameters();
    const auto fp32_only = std::count_if(p.values.begin(), p.values.end(), [](float x) {
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      return (bits & 0xffffu) != 0;
    });
    EXPECT_GT(double(fp32_only), 0.9 * double(p.values.size()));
  }
  EXPECT_LT(losses[1].back(), 0.1 * losses[1].front());                  // memorised
  EXPECT_NEAR(losses[1][10], losses[0][10], 0.1 + 0.2 * losses[0][10]);  // on the same path
}

// Denormals are zero while a step runs, and the caller's mode comes back.
TEST(FloatMode, DenormalsFlushWhileAStepRunsAndTheCallersModeReturns) {
  ASSERT_FALSE(denormals_flushed()) << "the test process starts with IEEE gradual underflow";
  volatile float tiny = 1e-39f;  // a denormal
  {
    const FlushDenormals flush;
    EXPECT_TRUE(denormals_flushed());
    EXPECT_EQ(tiny * 1.0f, 0.0f);  // read as zero
  }
  EXPECT_FALSE(denormals_flushed());
  EXPECT_GT(tiny * 1.0f, 0.0f);
  {
    const FlushDenormals off(false);
    EXPECT_FALSE(denormals_flushed());
  }
  const NetworkShape shape = infer_shapes(default_model_spec(), 2, 32, 32);
  for (bool flush : {true, false}) {
    StepOptions o;
    o.flush_denormals = flush;
    auto step = make_cpu_backend()->compile(default_model_spec(), shape, o);
    step->set_parameters(Parameters::glorot(shape, 3));
    const std::vector<float> images = testing::random_vector(size_t(2) * 3 * 32 * 32, 4);
    const int32_t labels[2] = {0, 1};
    step->train(images.data(), labels, 2);
    EXPECT_FALSE(denormals_flushed()) << "the caller's mode is restored";
    EXPECT_EQ(step->details()["denormals"], flush ? "flushed to zero" : "kept");
  }
}

TEST(Bf16Training, RefusedWithAClearMessageWhereUnsupported) {
  if (cpu_supports_bf16())
    GTEST_SKIP() << "bf16 is supported here (the CLI test covers the refusal)";
  StepOptions options;
  options.precision = "bf16";
  const ModelSpec spec = parse_model_spec("conv 4 kernel=3 pool=2; dense 2");
  try {
    make_backend(cpu_device())->compile(spec, infer_shapes(spec, 2, 8, 8), options);
    FAIL() << "bf16 accepted on a CPU without it";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision bf16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace histocnn
