// A test double: a CPU step that says it takes bytes (as the CUDA step
// does), expands them with TrainingStep's defaults, and counts what it was
// given; and a bitwise comparison. Shared by test_byte_images.cpp and test_byte_prediction.cpp.
#pragma once

#include <cstring>
#include <memory>
#include <vector>

#include "backends/backend.h"

namespace histocnn::testing {

// Whether two float vectors hold the same bits (the byte routes' promise).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A CPU step that says it takes bytes, and counts what it was given.
class ByteTakingStep final : public TrainingStep {
 public:
  explicit ByteTakingStep(std::unique_ptr<TrainingStep> inner) : inner_(std::move(inner)) {}
  int bytes_calls = 0, float_calls = 0;  // training
  int byte_predictions = 0;              // predict_bytes calls
  bool takes_byte_images() const override { return true; }
  void predict_bytes(const ByteImages& images, int count, float* probabilities,
                     float* features) override {
    ++byte_predictions;
    TrainingStep::predict_bytes(images, count, probabilities, features);
  }
  StepResult train_bytes(const ByteImages& images, const int32_t* labels, int count,
                         const BatchSlice& slice) override {
    ++bytes_calls;
    return TrainingStep::train_bytes(images, labels, count, slice);
  }
  StepResult train_slice(const float* images, const int32_t* labels, int count,
                         const BatchSlice& slice) override {
    ++float_calls;
    return inner_->train_slice(images, labels, count, slice);
  }
  void predict(const float* x, int n, float* p) override { inner_->predict(x, n, p); }
  void predict_features(const float* x, int n, float* p, float* f) override {
    inner_->predict_features(x, n, p, f);
  }
  StepResult gradients(const float* x, const int32_t* y, int n, bool t, Parameters* g) override {
    return inner_->gradients(x, y, n, t, g);
  }
  void set_parameters(const Parameters& p) override { inner_->set_parameters(p); }
  Parameters parameters() const override { return inner_->parameters(); }
  void set_learning_rate(float lr) override { inner_->set_learning_rate(lr); }
  void set_optimizer_state(const Parameters& m, const Parameters& v, int64_t s) override {
    inner_->set_optimizer_state(m, v, s);
  }
  void optimizer_state(Parameters* m, Parameters* v, int64_t* s) const override {
    inner_->optimizer_state(m, v, s);
  }
  MemoryReport memory() const override { return inner_->memory(); }
  StepProfile profile() const override { return inner_->profile(); }
  const NetworkShape& shape() const override { return inner_->shape(); }

 private:
  std::unique_ptr<TrainingStep> inner_;
};

}  // namespace histocnn::testing
