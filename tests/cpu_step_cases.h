// The CPU step on the test architectures against the naive reference
// network: one step's loss, gradients and probabilities under given step
// options (step_on), the inputs and reference every CPU step test uses
// (inputs_for, reference_for), and the tolerances they share. Shared by
// test_cpu_precision.cpp (the speed levers) and test_cpu_bf16.cpp.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn::cpu_step_cases {

using testing::Case;

struct Outcome {
  double loss;
  Parameters grads;
  std::vector<float> probs;
  nlohmann::json details;
};

inline Outcome step_on(const Case& c, const StepOptions& options, const Parameters& params,
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

inline Inputs inputs_for(const Case& c) {
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  Inputs in{Parameters::glorot(shape, 5), {}, {}};
  for (const auto& info : in.params.layout)
    if (info.is_bias)
      for (int64_t i = 0; i < info.size; ++i) in.params.data(info)[i] = 0.05f * float((i % 7) - 3);
  in.images = testing::random_vector(size_t(c.batch) * 3 * c.height * c.width, 17, 0, 1);
  for (int i = 0; i < c.batch; ++i) in.labels.push_back((i * 7 + 3) % shape.classes());
  return in;
}

inline reference::NetworkResult reference_for(const Case& c, const Inputs& in, uint64_t seed) {
  const NetworkShape shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  Buffers buffers = Buffers::initial(shape);
  return reference::network_forward_backward(shape, in.params, in.images.data(), in.labels.data(),
                                             c.count, c.training, seed, 0, &buffers);
}

// The step's loss, gradients and (evaluating) probabilities against the
// reference network's, within the tolerances every test here uses.
inline void expect_reference_results(const Outcome& got, const reference::NetworkResult& want,
                                     const Case& c, const std::string& where) {
  EXPECT_NEAR(got.loss, want.loss, 1e-4 * std::max(1.0, want.loss)) << where;
  testing::expect_gradients_match(got.grads, want.grads, 1e-4, 2e-3, where);
  for (size_t i = 0; i < got.probs.size() && !c.training; ++i)
    EXPECT_NEAR(got.probs[i], want.probs[i], 1e-4) << i << " " << where;
}

inline std::vector<Case> all_cases() {
  auto cases = testing::architectures();
  for (const auto& c : testing::batch_norm_architectures()) cases.push_back(c);
  return cases;
}

// Architectures whose later maps are large enough for Winograd to pay
// (winograd_pays, own_winograd_pays); all_cases' are too small.
inline std::vector<Case> winograd_cases() {
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

}  // namespace histocnn::cpu_step_cases
