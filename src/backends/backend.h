// The seam between the trainer and the hardware.
//
// A Backend compiles a TrainingStep: the whole network for one fixed batch
// shape (batch x 3 x H x W), with every tensor's shape and lifetime known up
// front, so a backend may choose layouts, fuse layers and plan its memory once.
// The CPU backend (oneDNN) and the CUDA backend (cuDNN/cuBLAS) implement it.
//
// Contracts shared by all backends:
//  * images: `count` x 3 x H x W floats (NCHW, values in [0,1]), count <= batch;
//    rows past `count` are ignored (a short last batch costs no recompilation).
//  * labels: `count` ints in {0 = benign, 1 = malignant}.
//  * Parameters cross the seam in canonical PyTorch layouts (see nn/params.h).
//  * Dropout masks come from counter_uniform(dropout_seed, step, index), so all
//    backends draw identical masks for the same step.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/params.h"
#include "nn/spec.h"
#include "train/adam.h"

namespace histocnn {

struct StepResult {
  double loss_sum = 0;  // summed over the `count` rows
  int correct = 0;      // argmax == label, counted over the rows
};

struct MemoryReport {
  int64_t activation_bytes = 0;  // activations, gradients and workspaces of one step
  int64_t parameter_bytes = 0;   // weights, gradients, optimizer state
  std::string detail;            // backend-specific, one line
  std::string plan;              // the memory plan, a table (empty where not planned)
};

// Where a step's time goes, accumulated since compile (seconds).
struct StepProfile {
  int64_t steps = 0;
  double forward = 0, backward = 0, update = 0, allocator = 0;
};

class TrainingStep {
 public:
  virtual ~TrainingStep() = default;

  // Forward, backward and Adam update. Increments the step counter.
  virtual StepResult train(const float* images, const int32_t* labels, int count) = 0;
  // Inference (no dropout): writes count x 2 class probabilities.
  virtual void predict(const float* images, int count, float* probabilities) = 0;
  // Forward and backward without update (tests, gradient checks). Dropout is
  // applied as in training when `training_mode`, using the current step.
  virtual StepResult gradients(const float* images, const int32_t* labels, int count,
                               bool training_mode, Parameters* grads) = 0;

  virtual void set_parameters(const Parameters& params) = 0;
  virtual Parameters parameters() const = 0;
  // Adam state: first/second moments in the parameter layout, and the step.
  virtual void set_optimizer_state(const Parameters& m, const Parameters& v, int64_t step) = 0;
  virtual void optimizer_state(Parameters* m, Parameters* v, int64_t* step) const = 0;

  virtual MemoryReport memory() const = 0;
  virtual StepProfile profile() const = 0;
  virtual const NetworkShape& shape() const = 0;
};

struct StepOptions {
  AdamConfig adam;
  uint64_t dropout_seed = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<TrainingStep> compile(const ModelSpec& spec, const NetworkShape& shape,
                                                const StepOptions& options) = 0;
};

// "cpu" always; "cuda" where built with CUDA. Throws naming --device otherwise.
std::unique_ptr<Backend> make_backend(const std::string& device);
std::vector<std::string> available_devices();

}  // namespace histocnn
