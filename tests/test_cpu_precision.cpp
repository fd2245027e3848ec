// The CPU step's speed levers against the naive reference: micro-batched
// blocks (conv + pool over slices of the batch) must give the whole-batch
// results to fp32 rounding; bf16 must give them to bf16 rounding and still
// train; our max-pool kernels must give oneDNN's pooling's results bit for
// bit, our fused first block the reference's to fp32 rounding, and so must
// oneDNN's Winograd convolutions. bf16 tests skip on a CPU without native bf16
// (AVX512-BF16 / AMX).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "backends/backend.h"
#include "backends/cpu/conv_pool_kernels.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/pooled_dgrad_kernels.h"
#include "backends/cpu/winograd_pool_kernels.h"
#include "core/bf16.h"  // round_to_bf16: round to nearest even, as oneDNN converts
#include "core/error.h"
#include "core/float_mode.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::Case;

struct Outcome {
  double loss;
  Parameters grads;
  std::vector<float> probs;
  nlohmann::json details;
};

Outcome step_on(const Case& c, const StepOptions& options, const Parameters& params,
                const std::vector<float>& images, const std::vector<int32_t>& labels) {
  const ModelSpec spec = parse_model_spec(c.spec);
  const NetworkShape shape = infer_shapes(spec, c.batch, c.height, c.width);
  auto step = make_backend(cpu_device())->compile(spec, shape, options);
  step->set_parameters(params);
  Outcome o;
  o.loss = step->gradients(images.data(), labels.data(), c.count, c.training, &o.grads).loss_sum /
           c.count;
  o.details = step->details();
  if (!shape.has_batch_norm()) {  // inference of a BN net needs trained running statistics
    o.probs.resize(size_t(c.batch) * size_t(shape.classes()));
    step->predict(images.data(), c.count, o.probs.data());
  }
  return o;
}

struct Inputs {
  Parameters params;
  std::vector<float> images;
  std::vector<int32_t> labels;
};

Inputs inputs_for(const Case& c) {
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  Inputs in{Parameters::glorot(shape, 5), {}, {}};
  for (const auto& info : in.params.layout)
    if (info.is_bias)
      for (int64_t i = 0; i < info.size; ++i) in.params.data(info)[i] = 0.05f * float((i % 7) - 3);
  in.images = testing::random_vector(size_t(c.batch) * 3 * c.height * c.width, 17, 0, 1);
  for (int i = 0; i < c.batch; ++i) in.labels.push_back((i * 7 + 3) % shape.classes());
  return in;
}

reference::NetworkResult reference_for(const Case& c, const Inputs& in, uint64_t seed) {
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  Buffers buffers = Buffers::initial(shape);
  return reference::network_forward_backward(shape, in.params, in.images.data(), in.labels.data(),
                                             c.count, c.training, seed, 0, &buffers);
}

// The step's loss, gradients and (evaluating) probabilities against the
// reference network's, within the tolerances every test here uses.
void expect_reference_results(const Outcome& got, const reference::NetworkResult& want,
                              const Case& c, const std::string& where) {
  EXPECT_NEAR(got.loss, want.loss, 1e-4 * std::max(1.0, want.loss)) << where;
  testing::expect_gradients_match(got.grads, want.grads, 1e-4, 2e-3, where);
  for (size_t i = 0; i < got.probs.size() && !c.training; ++i)
    EXPECT_NEAR(got.probs[i], want.probs[i], 1e-4) << i << " " << where;
}

std::vector<Case> all_cases() {
  auto cases = testing::architectures();
  for (const auto& c : testing::batch_norm_architectures()) cases.push_back(c);
  return cases;
}

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
// default where the CPU has AVX-512): the reference's loss, gradients and
// probabilities to fp32 rounding, whole batch or micro-batched later blocks,
// and fused exactly where the kernels take the block.
class FusedFirstBlock : public ::testing::TestWithParam<Case> {};

TEST_P(FusedFirstBlock, GivesTheReferenceResults) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  const ConvShape& first = shape.convs[0];
  const bool fusable =
      cpu::conv_pool_available() && !first.batch_norm && first.pool > 1 && first.out_c % 16 == 0;
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
// pool and no batch norm (the weight gradients exactly there; the data
// gradients there where the layouts suit the AVX-512 kernel).
class PooledWeightGradients : public ::testing::TestWithParam<Case> {};

TEST_P(PooledWeightGradients, GiveTheReferenceResultsWhereTheyRun) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  const auto want = reference_for(c, in, 99);
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  int ours_ran = 0;
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
        EXPECT_EQ(impl.find("histocnn pooled weight gradient") != std::string::npos,
                  pooled && ours_may)
            << name << ": " << impl << ", " << where;
        const bool data_ours = impl.find("histocnn pooled data gradient") != std::string::npos;
        EXPECT_TRUE(!data_ours || (pooled_data && ours_may))
            << name << ": " << impl << ", " << where;
        ours_ran += pooled && ours_may;
      }
    }
  const bool any = [&] {
    for (size_t k = 1; k < shape.convs.size(); ++k)
      if (shape.convs[k].pool > 1 && !shape.convs[k].batch_norm) return true;
    return false;
  }();
  EXPECT_EQ(ours_ran > 0, any);
}

// A network whose later blocks hold 16-channel blocks (as the paper's do):
// the data gradients from the pooled gradient run there wherever the CPU
// has their AVX-512 version, alone or with the weight gradients (then no
// pool backward at all), and give the reference's results.
TEST(PooledDataGradients, RunOnSixteenChannelBlocksAndGiveTheReferenceResults) {
  const Case c{"SixteenChannels",
               "conv 16 kernel=3 pool=2; conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; "
               "dense 8; dense 2",
               3,
               46,
               42,
               3,
               false};
  using mem = dnnl::memory;
  const auto in16 =
      cpu::lane_layout(mem::desc({1, 16, 8, 8}, mem::data_type::f32, mem::format_tag::nChw16c));
  const auto out16 =
      cpu::lane_layout(mem::desc({1, 16, 4, 4}, mem::data_type::f32, mem::format_tag::nChw16c));
  ASSERT_TRUE(in16 && out16);
  if (!cpu::pooled_dgrad_fast(*in16, *out16, {16, 16, 3, 1, 2}))
    GTEST_SKIP() << "no AVX-512 version on this CPU";
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
        EXPECT_NE(impl.find("histocnn pooled data gradient avx512"), std::string::npos)
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
// The architectures above have maps too small to pay; these do.
std::vector<Case> winograd_cases() {
  return {{"TwoBlocks", "conv 16 kernel=3 pool=2; conv 32 kernel=3 pool=2 pad=same; dense 2", 2, 56,
           56, 2, false},
          {"BatchNormDropout",
           "conv 16 kernel=3 pool=2; conv 16 kernel=3 pool=2 bn; dense 8; dropout 0.5; dense 2", 3,
           54, 58, 3, true},
          {"Wide",
           "conv 16 kernel=3 pool=2; conv 64 kernel=3 pool=2; conv 64 kernel=3 pool=1; "
           "dense 2",
           2, 64, 64, 2, false}};
}

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
        const bool expect = winograd && winograd_pays(shape.convs[k]) && cpu::conv_pool_available();
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
  if (cpu::conv_pool_available()) {
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
TEST_P(CpuBf16, GradientsWithinBf16RoundingOfTheFp32Step) {
  const Case& c = GetParam();
  const Inputs in = inputs_for(c);
  StepOptions options;
  options.dropout_seed = 99;
  const Outcome fp32 = step_on(c, options, in.params, in.images, in.labels);
  std::vector<float> rounded = in.images;
  for (float& x : rounded) x = round_to_bf16(x);
  const auto sensitivity =
      relative_errors(step_on(c, options, in.params, rounded, in.labels).grads, fp32.grads);
  options.precision = "bf16";
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
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, CpuBf16, ::testing::ValuesIn(all_cases()),
                         testing::case_name);

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
