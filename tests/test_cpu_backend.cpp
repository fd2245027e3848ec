// The oneDNN training step against the naive reference network: forward
// probabilities and every parameter gradient, for several architectures
// (so each layer kind is exercised alone and in combination), with padded
// batches and dropout; plus a direct finite-difference check of the step.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backends/backend.h"
#include "core/error.h"
#include "dist/communicator.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::random_vector;

using testing::Case;

class CpuStepVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(CpuStepVsReference, ForwardAndGradientsMatch) {
  const Case& c = GetParam();
  const ModelSpec spec = parse_model_spec(c.spec);
  const NetworkShape shape = infer_shapes(spec, c.batch, c.height, c.width);
  StepOptions options;
  options.dropout_seed = 99;
  auto step = make_backend(cpu_device())->compile(spec, shape, options);
  Parameters params = Parameters::glorot(shape, 5);
  // Non-zero biases so bias gradients and ReLU boundaries are exercised.
  for (const auto& info : params.layout)
    if (info.is_bias)
      for (int64_t i = 0; i < info.size; ++i) params.data(info)[i] = 0.05f * float((i % 7) - 3);
  step->set_parameters(params);
  const auto images = random_vector(size_t(c.batch) * 3 * c.height * c.width, 17, 0, 1);
  std::vector<int32_t> labels(c.batch);
  for (int i = 0; i < c.batch; ++i) labels[i] = (i * 7 + 3) % shape.classes();

  Parameters grads;
  const StepResult got = step->gradients(images.data(), labels.data(), c.count, c.training, &grads);
  const auto want = reference::network_forward_backward(
      shape, params, images.data(), labels.data(), c.count, c.training, options.dropout_seed, 0);
  EXPECT_NEAR(got.loss_sum / c.count, want.loss, 1e-4 * std::max(1.0, want.loss));
  testing::expect_gradients_match(grads, want.grads, 1e-4, 2e-3);
  std::vector<float> probs(size_t(c.batch) * size_t(shape.classes()));
  step->predict(images.data(), c.count, probs.data());
  if (!c.training) {
    for (int i = 0; i < shape.classes() * c.count; ++i) EXPECT_NEAR(probs[i], want.probs[i], 1e-4);
  }
  // The features slides export: what the last dense layer reads, no dropout.
  const auto inferred = reference::network_forward_backward(
      shape, params, images.data(), labels.data(), c.count, false, options.dropout_seed, 0);
  std::vector<float> features(size_t(c.count) * size_t(step->feature_width()) + 1, -7.0f);
  step->predict_features(images.data(), c.count, probs.data(), features.data());
  ASSERT_EQ(step->feature_width(), shape.denses.back().in);
  for (size_t i = 0; i + 1 < features.size(); ++i)
    ASSERT_NEAR(features[i], inferred.features[i], 1e-4) << "feature " << i;
  EXPECT_EQ(features.back(), -7.0f) << "wrote past count rows";
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(probs[i], inferred.probs[i], 1e-4);
}

// Label smoothing (uniform and to the neighbouring grades) changes the loss
// and every gradient as the reference says.
TEST(CpuStep, SmoothedLabelsMatchTheReference) {
  const ModelSpec spec = parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dense 5");
  const NetworkShape shape = infer_shapes(spec, 6, 14, 14);
  const Parameters params = Parameters::glorot(shape, 5);
  const auto images = random_vector(size_t(6) * 3 * 14 * 14, 17, 0, 1);
  const std::vector<int32_t> labels = {0, 4, 2, 1, 3, 2};
  for (const elementwise::LabelSmoothing s :
       {elementwise::LabelSmoothing{0.2f, false}, elementwise::LabelSmoothing{0.3f, true}}) {
    StepOptions options;
    options.label_smoothing = s;
    auto step = make_backend(cpu_device())->compile(spec, shape, options);
    step->set_parameters(params);
    Parameters grads;
    const StepResult got = step->gradients(images.data(), labels.data(), 6, false, &grads);
    const auto want = reference::network_forward_backward(
        shape, params, images.data(), labels.data(), 6, false, 0, 0, nullptr, s);
    const auto plain = reference::network_forward_backward(shape, params, images.data(),
                                                           labels.data(), 6, false, 0, 0);
    EXPECT_NEAR(got.loss_sum / 6, want.loss, 1e-4 * std::max(1.0, want.loss));
    EXPECT_GT(std::abs(want.loss - plain.loss), 1e-3) << "smoothing must change the loss";
    testing::expect_gradients_match(grads, want.grads, 1e-4, 2e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, CpuStepVsReference,
                         ::testing::ValuesIn(testing::architectures()), testing::case_name);

class CpuBatchNormVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(CpuBatchNormVsReference, TrainingGradientsRunningStatisticsAndInferenceMatch) {
  const Case& c = GetParam();
  const ModelSpec spec = parse_model_spec(c.spec);
  const NetworkShape shape = infer_shapes(spec, c.batch, c.height, c.width);
  StepOptions options;
  options.dropout_seed = 7;
  auto step = make_backend(cpu_device())->compile(spec, shape, options);
  Parameters params = Parameters::glorot(shape, 11);
  for (const auto& info : params.layout)  // non-trivial scales and shifts
    for (int64_t i = 0; i < info.size && (info.is_bias || info.starts_at_one); ++i)
      params.data(info)[i] += 0.05f * float((i % 7) - 3);
  step->set_parameters(params);
  const auto images = random_vector(size_t(c.batch) * 3 * c.height * c.width, 19, 0, 1);
  std::vector<int32_t> labels(c.batch);
  for (int i = 0; i < c.batch; ++i) labels[i] = (i * 5 + 1) % shape.classes();

  Buffers want_buffers = Buffers::initial(shape);
  Parameters grads;
  const StepResult got = step->gradients(images.data(), labels.data(), c.count, true, &grads);
  const auto want =
      reference::network_forward_backward(shape, params, images.data(), labels.data(), c.count,
                                          true, options.dropout_seed, 0, &want_buffers);
  EXPECT_NEAR(got.loss_sum / c.count, want.loss, 1e-4 * std::max(1.0, want.loss));
  testing::expect_gradients_match(grads, want.grads, 1e-4, 2e-3);
  // The running statistics moved exactly as PyTorch's do after one batch.
  const Buffers buffers = step->buffers();
  ASSERT_EQ(buffers.values.size(), want_buffers.values.size());
  EXPECT_EQ(buffers.batches_tracked, shape.has_batch_norm() ? 1 : 0);
  for (size_t i = 0; i < buffers.values.size(); ++i)
    EXPECT_NEAR(buffers.values[i], want_buffers.values[i], 1e-5) << "buffer value " << i;
  // Inference uses them, for any number of rows.
  const int rows = std::max(1, c.count - 1);
  std::vector<float> probs(size_t(c.batch) * size_t(shape.classes()));
  step->predict(images.data(), rows, probs.data());
  const auto inferred = reference::network_forward_backward(
      shape, params, images.data(), labels.data(), c.count, false, 0, 0, &want_buffers);
  for (int i = 0; i < shape.classes() * rows; ++i)
    EXPECT_NEAR(probs[i], inferred.probs[i], 1e-4) << i;
  std::vector<float> features(size_t(rows) * size_t(step->feature_width()));
  step->predict_features(images.data(), rows, probs.data(), features.data());
  for (size_t i = 0; i < features.size(); ++i)
    ASSERT_NEAR(features[i], inferred.features[i], 1e-4) << "feature " << i;
  // Buffers survive a round trip, and short training batches are refused.
  step->set_buffers(want_buffers);
  EXPECT_EQ(step->buffers().values, want_buffers.values);
  if (shape.has_batch_norm() && c.batch > 1) {
    EXPECT_THROW(step->train(images.data(), labels.data(), c.batch - 1), Error);
  }
}

INSTANTIATE_TEST_SUITE_P(BatchNorm, CpuBatchNormVsReference,
                         ::testing::ValuesIn(testing::batch_norm_architectures()),
                         testing::case_name);

TEST(CpuStep, LossGradientMatchesFiniteDifferencesOfTheStepItself) {
  const ModelSpec spec =
      parse_model_spec("conv 6 kernel=3 pool=2; conv 8 kernel=3 pool=2; dense 10; dense 2");
  const NetworkShape shape = infer_shapes(spec, 3, 14, 14);
  auto step = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
  Parameters params = Parameters::glorot(shape, 8);
  step->set_parameters(params);
  const auto images = random_vector(3 * 3 * 14 * 14, 3, 0, 1);
  const std::vector<int32_t> labels = {1, 0, 1};
  Parameters grads;
  step->gradients(images.data(), labels.data(), 3, false, &grads);
  auto loss_at = [&](const Parameters& p) {
    step->set_parameters(p);
    Parameters unused;
    return step->gradients(images.data(), labels.data(), 3, false, &unused).loss_sum / 3;
  };
  // ReLU and max-pool make the loss piecewise smooth: a coordinate whose
  // difference quotient changes with the step size sits on a kink and is
  // skipped (a minority may be).
  int checked = 0, kinks = 0;
  for (const auto& info : params.layout) {
    for (int64_t i = 0; i < info.size; i += std::max<int64_t>(1, info.size / 5)) {
      auto quotient = [&](float h) {
        Parameters p = params;
        p.data(info)[i] += h;
        const double up = loss_at(p);
        p.data(info)[i] -= 2 * h;
        return (up - loss_at(p)) / (2 * h);
      };
      const double coarse = quotient(4e-3f), middle = quotient(2e-3f), fine = quotient(1e-3f);
      const double spread = std::max({coarse, middle, fine}) - std::min({coarse, middle, fine});
      if (spread > 2e-4 + 0.005 * std::fabs(fine)) {
        ++kinks;
        continue;
      }
      EXPECT_NEAR(grads.data(info)[i], fine, 1e-3 + 0.03 * std::fabs(fine))
          << info.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_LE(kinks, checked / 3);
  EXPECT_GE(checked, 25);
}

TEST(CpuStep, TrainingReducesTheLossOnAFixedBatch) {
  // No dropout: a fixed batch must be memorised quickly.
  const ModelSpec spec =
      parse_model_spec("conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; dense 64; dense 2");
  const NetworkShape shape = infer_shapes(spec, 8, 32, 32);
  auto step = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
  step->set_parameters(Parameters::glorot(shape, 1));
  const auto images = random_vector(8 * 3 * 32 * 32, 21, 0, 1);
  std::vector<int32_t> labels = {0, 1, 0, 1, 1, 0, 1, 0};
  const double first = step->train(images.data(), labels.data(), 8).loss_sum;
  double last = first;
  for (int i = 0; i < 30; ++i) last = step->train(images.data(), labels.data(), 8).loss_sum;
  EXPECT_LT(last, 0.5 * first);
}

}  // namespace
}  // namespace histocnn

namespace histocnn {
namespace {

// Data parallelism without MPI: the gradients of the slices of a batch
// (each scaled by the global batch, dropout masks by global row) sum to the
// whole batch's gradient.
TEST(CpuStep, SlicesOfABatchSumToTheWholeBatchGradient) {
  const ModelSpec spec = parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dropout 0.5; dense 2");
  const int rows = 5;
  const auto images = testing::random_vector(size_t(rows) * 3 * 16 * 16, 3, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 1, 0, 1};
  std::vector<float> captured;
  StepOptions options;
  options.dropout_seed = 7;
  options.reduce_gradients = [&](float* g, int64_t n, StreamHandle) { captured.assign(g, g + n); };
  const Parameters initial = Parameters::glorot(infer_shapes(spec, 1, 16, 16), 4);
  auto whole = make_backend(cpu_device())->compile(spec, infer_shapes(spec, rows, 16, 16), options);
  whole->set_parameters(initial);
  whole->train(images.data(), labels.data(), rows);
  const std::vector<float> want = captured;
  std::vector<float> sum(want.size(), 0.0f);
  const int per = (rows + 1) / 2;
  for (int rank = 0; rank < 2; ++rank) {
    const RowRange r = rows_of_rank(rows, rank, 2);
    auto part = make_backend(cpu_device())->compile(spec, infer_shapes(spec, per, 16, 16), options);
    part->set_parameters(initial);
    part->train_slice(images.data() + size_t(r.begin) * 3 * 16 * 16, labels.data() + r.begin,
                      r.count(), BatchSlice{rows, r.begin});
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += captured[i];
  }
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(sum[i], want[i], 1e-5) << i;
  // A process without rows contributes zeros and still updates.
  auto idle = make_backend(cpu_device())->compile(spec, infer_shapes(spec, per, 16, 16), options);
  idle->set_parameters(initial);
  idle->train_slice(nullptr, nullptr, 0, BatchSlice{rows, rows});
  for (float g : captured) ASSERT_EQ(g, 0.0f);
}

}  // namespace
}  // namespace histocnn
