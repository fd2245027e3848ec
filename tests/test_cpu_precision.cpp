// The CPU step's speed levers against the naive reference: micro-batched
// blocks (conv + pool over slices of the batch) must give the whole-batch
// results to fp32 rounding; our max-pool kernels must give oneDNN's
// pooling's results bit for bit, our fused first block, the later blocks'
// gradients from the pooled gradient and our Winograd forward the
// reference's to fp32 rounding, and so must oneDNN's Winograd convolutions
// (each lever also in bf16 where the CPU has native bf16). bf16 against the
// fp32 step: test_cpu_bf16.cpp.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>

#include "backends/backend.h"
#include "backends/cpu/conv_pool_kernels.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/pooled_dgrad_kernels.h"
#include "backends/cpu/pooled_wgrad_kernels.h"
#include "backends/cpu/winograd_pool_kernels.h"
#include "cpu_step_cases.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn {
namespace {

using cpu_step_cases::all_cases;
using cpu_step_cases::expect_reference_results;
using cpu_step_cases::Inputs;
using cpu_step_cases::inputs_for;
using cpu_step_cases::Outcome;
using cpu_step_cases::reference_for;
using cpu_step_cases::step_on;
using cpu_step_cases::winograd_cases;
using testing::Case;

// Whether block k of a case can be sliced (pooling, no batch norm).
bool sliceable(const Case& c, size_t k) {
  const ModelSpec spec = parse_model_spec(c.spec);
  const NetworkShape shape = infer_shapes(spec, c.batch, c.height, c.width);
  return shape.convs[k].pool > 1 && !shape.convs[k].batch_norm;
}

class MicroBatch : public ::testing::TestWithParam<Case> {};

TEST_P(MicroBatch, SlicedBlocksGiveTheReferenceGradients) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  // 1 byte: one image per slice; 2 images' worth of conv1: slices of 2 where
  // the batch divides (else 1), later blocks whole.
  const size_t conv1_row =
      size_t(shape.convs[0].out_c) * shape.convs[0].conv_h * shape.convs[0].conv_w * sizeof(float);
  for (size_t budget : {size_t(1), 2 * conv1_row}) {
    StepOptions options;
    options.dropout_seed = 99;
    options.cpu_slice_bytes = budget;
    options.cpu_onednn_conv1 = true;  // else conv1 is fused, never sliced
    const Outcome got = step_on(c, options, in.params, in.images, in.labels);
    const std::string where = "budget " + std::to_string(budget);
    expect_reference_results(got, want, c, where);
    // The blocks that can be sliced were, when the batch has more than one image.
    const auto& sliced = got.details["micro_batched"];
    for (size_t k = 0; k < shape.convs.size(); ++k) {
      const std::string name = "conv" + std::to_string(k + 1);
      const bool expect = budget == 1 && c.batch > 1 && sliceable(c, k);
      if (expect) {
        ASSERT_TRUE(sliced.contains(name)) << where << " " << got.details.dump();
        EXPECT_EQ(sliced[name]["rows"].get<int>(), 1);
        EXPECT_EQ(sliced[name]["slices"].get<int>(), c.batch);
      }
      if (!sliceable(c, k)) {
        EXPECT_FALSE(sliced.contains(name)) << where;
      }
    }
    if (!c.training && !shape.has_batch_norm()) {
      for (int i = 0; i < shape.classes() * c.count; ++i)
        EXPECT_NEAR(got.probs[i], want.probs[i], 1e-4) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, MicroBatch, ::testing::ValuesIn(all_cases()),
                         testing::case_name);

TEST(MicroBatch, SliceRowsDividesTheBatchWithinTheBudget) {
  StepOptions options;
  options.cpu_onednn_conv1 = true;  // else conv1 is fused, never sliced
  const Case c{
      "Paper200", "conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; dense 2", 6, 40, 40, 6, false};
  const size_t row = 32 * 38 * 38 * 4;
  options.cpu_slice_bytes = 4 * row;  // 4 rows fit, but 4 does not divide 6: slices of 3
  const Inputs in = inputs_for(c);
  const Outcome got = step_on(c, options, in.params, in.images, in.labels);
  EXPECT_EQ(got.details["micro_batched"]["conv1"]["rows"].get<int>(), 3);
  EXPECT_FALSE(got.details["micro_batched"].contains("conv2"));  // 6 x 32 x 17 x 17 x 4 fits
  options.cpu_slice_bytes = 0;                                   // never
  EXPECT_TRUE(
      step_on(c, options, in.params, in.images, in.labels).details["micro_batched"].empty());
}

// The default budget grows with the OpenMP team beyond two threads, so that
// slices keep every thread's share (and oneDNN's weight-gradient split over
// images) as at two: 4 MiB at 1-2 threads, 2 MiB per thread beyond.
TEST(MicroBatch, DefaultBudgetScalesWithTheThreads) {
  EXPECT_EQ(cpu_slice_bytes_for(1), size_t(4) << 20);
  EXPECT_EQ(cpu_slice_bytes_for(2), size_t(4) << 20);
  EXPECT_EQ(cpu_slice_bytes_for(16), size_t(32) << 20);
  const Case c{"Paper", "conv 32 kernel=3 pool=2; dense 2", 2, 12, 12, 2, false};
  const Inputs in = inputs_for(c);
  const int threads = omp_get_max_threads();
  for (int team : {1, 3, 8}) {
    omp_set_num_threads(team);
    const Outcome got = step_on(c, StepOptions{}, in.params, in.images, in.labels);
    EXPECT_EQ(got.details["slice_budget_bytes"].get<size_t>(), cpu_slice_bytes_for(team)) << team;
  }
  omp_set_num_threads(threads);
}

// Max pooling by our kernels (the default) or by oneDNN's primitives: the
// same loss, gradients and probabilities to the bit — a max and a scatter
// round nothing — whole-batch and micro-batched, in each precision here.
class OwnPooling : public ::testing::TestWithParam<Case> {};

TEST_P(OwnPooling, GivesOneDnnsPoolingResultsBitForBit) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  std::vector<std::string> precisions = {"fp32"};
  if (cpu_supports_bf16()) precisions.push_back("bf16");
  for (const std::string& precision : precisions)
    for (size_t budget : {size_t(0), size_t(1)}) {
      StepOptions options;
      options.dropout_seed = 99;
      options.precision = precision;
      options.cpu_slice_bytes = budget;
      options.cpu_onednn_conv1 = true;  // conv1's pool on our pool kernels, not fused
      // The later blocks' weight gradients from oneDNN in both (ours from the
      // pooled gradient need our pool: PooledWeightGradients below).
      options.cpu_pooled_weight_gradients = false;
      options.cpu_pooled_data_gradients = false;  // likewise (pool backward under test)
      // And oneDNN's forward convolutions: our Winograd kernel pools itself.
      options.cpu_own_winograd_forward = false;
      const Outcome ours = step_on(c, options, in.params, in.images, in.labels);
      options.cpu_onednn_pooling = true;
      const Outcome theirs = step_on(c, options, in.params, in.images, in.labels);
      const std::string where = precision + ", budget " + std::to_string(budget);
      EXPECT_EQ(ours.loss, theirs.loss) << where;
      EXPECT_EQ(ours.grads.values, theirs.grads.values) << where;
      EXPECT_EQ(ours.probs, theirs.probs) << where;
      for (size_t k = 0; k < shape.convs.size(); ++k) {
        const std::string name = "conv" + std::to_string(k + 1);
        if (shape.convs[k].pool < 2) continue;
        EXPECT_EQ(ours.details["max_pool"][name].get<std::string>().rfind("histocnn", 0), 0u)
            << name << " " << where;
        EXPECT_EQ(theirs.details["max_pool"][name], "oneDNN") << name << " " << where;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Architectures, OwnPooling, ::testing::ValuesIn(all_cases()),
                         testing::case_name);

// The first block on the fused convolution + ReLU + pool kernels (the
// default where the CPU has AVX-512 or AVX2): the reference's loss, gradients and
// probabilities to fp32 rounding, whole batch or micro-batched later blocks,
// and fused exactly where the kernels take the block.
class FusedFirstBlock : public ::testing::TestWithParam<Case> {};

TEST_P(FusedFirstBlock, GivesTheReferenceResults) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  const ConvShape& first = shape.convs[0];
  // oneDNN's blocks are the version's groups: 16 channels on AVX-512, 8 on AVX2.
  const int group = cpu::conv_pool_isa() == "avx512" ? 16 : 8;
  const bool fusable =
      cpu::conv_pool_available() && !first.batch_norm && first.pool > 1 && first.out_c % group == 0;
  for (size_t budget : {size_t(0), size_t(1)}) {
    StepOptions options;
    options.dropout_seed = 99;
    options.cpu_slice_bytes = budget;
    const Outcome got = step_on(c, options, in.params, in.images, in.labels);
    const std::string where = "budget " + std::to_string(budget);
    const std::string conv1 = got.details["convolution"]["conv1"];
    EXPECT_EQ(conv1.rfind("histocnn fused", 0) == 0, fusable) << conv1 << ", " << where;
    expect_reference_results(got, want, c, where);
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, FusedFirstBlock, ::testing::ValuesIn(all_cases()),
                         testing::case_name);

// The later blocks' weight and bias gradients from the pooled gradient (the
// default; backends/cpu/pooled_wgrad_kernels.h) or oneDNN's, and their data
// gradients likewise (pooled_dgrad_kernels.h), in every combination: the
// reference's results to fp32 rounding, whole batch and micro-batched, in
// each precision here (bf16 against fp32's reference within bf16's
// tolerances is CpuBf16's); ours only where a block after the first has our
// pool and no batch norm, and there where the layouts suit a vector version
// (the test after the next shows where they run).
class PooledWeightGradients : public ::testing::TestWithParam<Case> {};

// Whether this CPU runs the AVX-512 versions of both pooled gradients on
// 16-channel blocks.
bool avx512_pooled_gradients_here() {
  using mem = dnnl::memory;
  const auto in16 =
      cpu::lane_layout(mem::desc({1, 16, 8, 8}, mem::data_type::f32, mem::format_tag::nChw16c));
  const auto out16 =
      cpu::lane_layout(mem::desc({1, 16, 4, 4}, mem::data_type::f32, mem::format_tag::nChw16c));
  const cpu::PooledConv conv{16, 16, 3, 1, 2};
  return in16 && out16 && cpu::pooled_dgrad_fast(*in16, *out16, conv) &&
         cpu::pooled_wgrad_fast(*in16, *out16, conv);
}

TEST_P(PooledWeightGradients, GiveTheReferenceResultsWhereTheyRun) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  for (int mode : {0, 1, 2, 3})
    for (size_t budget : {size_t(0), size_t(1)}) {
      const bool pooled = mode < 2, pooled_data = mode % 2 == 0;
      StepOptions options;
      options.dropout_seed = 99;
      options.cpu_slice_bytes = budget;
      options.cpu_pooled_weight_gradients = pooled;
      options.cpu_pooled_data_gradients = pooled_data;
      const Outcome got = step_on(c, options, in.params, in.images, in.labels);
      const std::string where = std::string(pooled ? "pooled" : "oneDNN") + " weights, " +
                                (pooled_data ? "pooled" : "oneDNN") + " data, budget " +
                                std::to_string(budget);
      expect_reference_results(got, want, c, where);
      for (size_t k = 1; k < shape.convs.size(); ++k) {
        const std::string name = "conv" + std::to_string(k + 1);
        const std::string impl = got.details["convolution"][name];
        const bool ours_may = shape.convs[k].pool > 1 && !shape.convs[k].batch_norm;
        const bool weights_ours = impl.find("histocnn pooled weight gradient") != std::string::npos;
        EXPECT_TRUE(!weights_ours || (pooled && ours_may)) << name << ": " << impl << ", " << where;
        const bool data_ours = impl.find("histocnn pooled data gradient") != std::string::npos;
        EXPECT_TRUE(!data_ours || (pooled_data && ours_may))
            << name << ": " << impl << ", " << where;
      }
    }
}

// A network whose later blocks hold whole channel blocks (as the paper's
// do): the weight and data gradients from the pooled gradient run there
// wherever the CPU has their vector versions (AVX-512 on 16-channel blocks,
// AVX2 on oneDNN's 8-channel blocks of AVX2 CPUs), alone or together (then
// no pool backward at all), and give the reference's results.
TEST(PooledDataGradients, RunWhereTheCpuHasAVectorVersionAndGiveTheReferenceResults) {
  const Case c{"SixteenChannels",
               "conv 16 kernel=3 pool=2; conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; "
               "dense 8; dense 2",
               3,
               46,
               42,
               3,
               false};
  const bool avx512 = avx512_pooled_gradients_here();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!avx512 && !avx2) GTEST_SKIP() << "no vector version on this CPU";
  const std::string isa = avx512 ? "avx512" : "avx2";
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  for (bool pooled_weights : {true, false})
    for (size_t budget : {size_t(0), size_t(1)}) {
      StepOptions options;
      options.dropout_seed = 99;
      options.cpu_slice_bytes = budget;
      options.cpu_pooled_weight_gradients = pooled_weights;
      const Outcome got = step_on(c, options, in.params, in.images, in.labels);
      const std::string where = std::string(pooled_weights ? "pooled" : "oneDNN") +
                                " weights, budget " + std::to_string(budget);
      expect_reference_results(got, want, c, where);
      for (const char* name : {"conv2", "conv3"}) {
        const std::string impl = got.details["convolution"][name];
        EXPECT_NE(impl.find("histocnn pooled data gradient " + isa), std::string::npos)
            << name << ": " << impl << ", " << where;
        EXPECT_EQ(impl.find("histocnn pooled weight gradient " + isa) != std::string::npos,
                  pooled_weights)
            << name << ": " << impl << ", " << where;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Architectures, PooledWeightGradients, ::testing::ValuesIn(all_cases()),
                         testing::case_name);

// 3x3 convolutions on oneDNN's Winograd F(4x4, 3x3) (the default where it
// pays) or direct: both give the reference's loss, gradients and
// probabilities within the tolerances above (Winograd's rounding error, ~1e-5
// of a tensor's rms, is far inside them; a wrong transform is off by ~100%),
// whole batch and micro-batched, and Winograd runs exactly where asked, where
// winograd_pays and the CPU has AVX-512 (the ISA the fused kernels need too).
// The architectures above have maps too small to pay; winograd_cases' do.

class Winograd : public ::testing::TestWithParam<Case> {};

TEST_P(Winograd, GivesTheReferenceResultsOnOrOff) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  int winograd_blocks = 0;
  // Winograd everywhere it pays, Winograd but for the weight gradients
  // (cpu_winograd_weights = false), or direct.
  for (int mode : {0, 1, 2})
    for (size_t budget : {size_t(0), size_t(1)}) {
      const bool winograd = mode < 2, weights = mode == 0;
      StepOptions options;
      options.dropout_seed = 99;
      options.cpu_winograd = winograd;
      options.cpu_winograd_weights = weights;
      options.cpu_slice_bytes = budget;
      // oneDNN's weight gradients, whose algorithm is under test (ours from
      // the pooled gradient: PooledWeightGradients below), and data gradients.
      options.cpu_pooled_weight_gradients = false;
      options.cpu_pooled_data_gradients = false;
      options.cpu_own_winograd_forward = false;  // ours: OwnWinogradForward below
      const Outcome got = step_on(c, options, in.params, in.images, in.labels);
      const std::string where = std::string(mode == 0   ? "winograd"
                                            : mode == 1 ? "winograd but weights"
                                                        : "direct") +
                                ", budget " + std::to_string(budget);
      expect_reference_results(got, want, c, where);
      for (size_t k = 1; k < shape.convs.size(); ++k) {
        const std::string name = "conv" + std::to_string(k + 1);
        const std::string impl = got.details["convolution"][name];
        const bool expect = winograd && winograd_pays(shape.convs[k]) &&
                            cpu::machine_kernel_isa() == cpu::KernelIsa::avx512;
        EXPECT_EQ(impl.find("wino") != std::string::npos, expect) << name << ": " << impl;
        winograd_blocks += expect;
        // "forward / weights / data" where they differ: the weights' part
        // direct exactly when asked.
        const size_t first = impl.find(" / "), second = impl.find(" / ", first + 3);
        if (expect && !weights) {
          ASSERT_NE(second, std::string::npos) << name << ": " << impl;
          EXPECT_EQ(impl.substr(first + 3, second - first - 3).find("wino"), std::string::npos)
              << name << ": " << impl;
        }
        if (expect && weights) {
          EXPECT_EQ(first, std::string::npos) << name << ": " << impl;
        }
      }
    }
  if (cpu::machine_kernel_isa() == cpu::KernelIsa::avx512) {
    EXPECT_GT(winograd_blocks, 0) << "no block ran Winograd";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Winograd, ::testing::ValuesIn(winograd_cases()),
                         testing::case_name);

// The later blocks' forward by our Winograd conv+ReLU+pool kernel
// (backends/cpu/winograd_pool_kernels.h): it runs exactly where asked and
// where it applies (Winograd pays, 3x3, 2x2 pool, no batch norm, channels
// in 16s, AVX-512), with the backward's routes ours or oneDNN's, whole
// batch or micro-batched, and gives the reference's results.
class OwnWinogradForward : public ::testing::TestWithParam<Case> {};

TEST_P(OwnWinogradForward, GivesTheReferenceResultsWhereItRuns) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  int ours_ran = 0;
  for (bool own : {true, false})
    for (bool pooled_routes : {true, false})
      for (size_t budget : {size_t(0), size_t(1)}) {
        StepOptions options;
        options.dropout_seed = 99;
        options.cpu_slice_bytes = budget;
        options.cpu_own_winograd_forward = own;
        options.cpu_pooled_weight_gradients = pooled_routes;
        options.cpu_pooled_data_gradients = pooled_routes;
        const Outcome got = step_on(c, options, in.params, in.images, in.labels);
        const std::string where = std::string(own ? "our forward" : "oneDNN's forward") +
                                  (pooled_routes ? ", pooled gradients" : ", oneDNN's gradients") +
                                  ", budget " + std::to_string(budget);
        expect_reference_results(got, want, c, where);
        for (size_t k = 1; k < shape.convs.size(); ++k) {
          const ConvShape& s = shape.convs[k];
          const std::string name = "conv" + std::to_string(k + 1);
          const std::string impl = got.details["convolution"][name];
          const bool expect = own && own_winograd_pays(s) && s.kernel == 3 && s.pool == 2 &&
                              !s.batch_norm && s.in_c % 16 == 0 && s.out_c % 16 == 0 &&
                              cpu::winograd_pool_available();
          EXPECT_EQ(impl.rfind("histocnn Winograd F(4x4,3x3)+ReLU+pool", 0) == 0, expect)
              << name << ": " << impl << ", " << where;
          ours_ran += expect;
        }
      }
  const bool any = [&] {
    for (size_t k = 1; k < shape.convs.size(); ++k) {
      const ConvShape& s = shape.convs[k];
      if (own_winograd_pays(s) && s.pool == 2 && !s.batch_norm) return true;
    }
    return false;
  }();
  if (cpu::winograd_pool_available()) {
    EXPECT_EQ(ours_ran > 0, any);
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, OwnWinogradForward, ::testing::ValuesIn(winograd_cases()),
                         testing::case_name);

}  // namespace
}  // namespace histocnn
