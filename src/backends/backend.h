// The seam between the trainer and the hardware.
//
// A Backend compiles a TrainingStep: the whole network for one fixed batch
// shape (batch x 3 x H x W), with every tensor's shape and lifetime known up
// front, so a backend may choose layouts, fuse layers and plan its memory once.
// The CPU backend (oneDNN) and the CUDA backend (cuDNN/cuBLAS) implement it.
//
// Contracts shared by all backends (in the spirit of dlib's layers_abstract.h):
//  * Every pointer crossing this interface is HOST memory. A device backend
//    copies in and out itself (through pinned staging buffers).
//  * images: `count` x 3 x H x W floats (NCHW, standardised), count <= batch;
//    rows past `count` are ignored (a short last batch costs no recompilation).
//  * labels: `count` ints in [0, classes) (shape.classes(): the last dense
//    layer's outputs; 0 benign, 1 malignant for the GlaS labels); others throw
//    histocnn::Error (check_label).
//  * Parameters cross the seam in canonical PyTorch layouts (see nn/params.h).
//  * Dropout masks come from elementwise::dropout_scale(seed, dropout_stream(step,
//    layer), index), so all backends draw identical masks for the same step.
//  * Device memory (tensors, workspaces, optimizer state) comes only from
//    DeviceContext::memory; all device work goes to DeviceContext::stream.
//  * Thread-safety: a TrainingStep is used by one host thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/byte_images.h"
#include "core/device.h"
#include "core/error.h"
#include "core/host_buffers.h"
#include "memory/memory_resource.h"
#include "nn/adam.h"
#include "nn/params.h"
#include "nn/spec.h"

namespace histocnn {

// A kernel of ours that the device refused to run where nothing else could
// take its place (its route forced, or no other route): the self-test
// reports it as a failure, not as a route that does not apply.
class KernelRefused : public Error {
 public:
  using Error::Error;
};

struct StepResult {
  double loss_sum = 0;  // summed over the `count` rows
  int correct = 0;      // argmax == label, counted over the rows
};

struct MemoryReport {
  int64_t activation_bytes =
      0;  // activations, gradients and workspaces of one step (the plan's peak)
  int64_t parameter_bytes = 0;   // weights, gradients, optimizer state
  std::string detail;            // backend-specific, one line
  std::string plan;              // the memory plan, a table
  uint64_t allocator_calls = 0;  // allocate + deallocate calls into the resource since compile
};

// Where a step's time goes, accumulated since compile (seconds).
struct StepProfile {
  int64_t steps = 0;
  double forward = 0, backward = 0, update = 0, allocator = 0;
  // With StepOptions::profile_layers: seconds per layer and direction
  // ("conv1 forward", "fc2 backward", "loss", "update", ...).
  std::map<std::string, double> layers;
};

// The rows of a global batch this process computes (data-parallel training):
// the loss is the mean over the global batch, and dropout masks are indexed
// by global row, so N processes reproduce one process's step.
struct BatchSlice {
  int global_count = 0;   // rows of the whole batch over all processes (0: this call's count)
  int64_t first_row = 0;  // global index of this call's first row
};

// Throws histocnn::Error unless 0 <= label < classes.
inline void check_label(int label, int classes) {
  if (label < 0 || label >= classes)
    fail("label " + std::to_string(label) + " is not a class of this network (0.." +
         std::to_string(classes - 1) + ")");
}

// Throws histocnn::Error unless the network takes RGB images: bytes carry 3 channels.
inline void check_byte_images(const NetworkShape& shape) {
  if (shape.channels != 3)
    fail("images as bytes are RGB: this network takes " + std::to_string(shape.channels) +
         " channels");
}

class TrainingStep {
 public:
  virtual ~TrainingStep() = default;

  // Forward, backward and Adam update; increments the step counter.
  // requires: see the file comment (host pointers, count in 1..batch).
  // ensures:  parameters updated; the result's loss and count are exact for the
  //           rows. A device backend may return before the device finished:
  //           it then accumulates loss/correct on the device and returns them
  //           from the next synchronising call (see deferred_results()).
  StepResult train(const float* images, const int32_t* labels, int count) {
    return train_slice(images, labels, count, BatchSlice{});
  }
  // The same for a slice of a global batch; count may be 0 (a process with
  // no rows of a short last batch): its gradients are zero, and it still
  // takes part in the gradient reduction and applies the update.
  // StepOptions::reduce_gradients, when set, runs between backward and update.
  virtual StepResult train_slice(const float* images, const int32_t* labels, int count,
                                 const BatchSlice& slice) = 0;
  // The same step on images given as bytes and lookup tables
  // (core/byte_images.h): bit for bit train_slice on expand_byte_images'
  // floats. A step that takes_byte_images() expands them itself (the CUDA
  // step: on the device, after a quarter of the bytes crossed PCIe); the
  // default expands them on the host first. Loaders hand bytes only to steps
  // that take them.
  virtual bool takes_byte_images() const { return false; }
  virtual StepResult train_bytes(const ByteImages& images, const int32_t* labels, int count,
                                 const BatchSlice& slice) {
    const HostFloats floats = expanded_on_host(images, count);
    return train_slice(floats.data(), labels, count, slice);
  }
  // True when train() returns zeros and the epoch's sums come from
  // take_results() (device backends: no host synchronisation per step).
  virtual bool deferred_results() const { return false; }
  // Synchronises and returns the sums of every train() since the last call.
  virtual StepResult take_results() { return {}; }
  // Inference (no dropout): writes count x classes probabilities (host). Synchronises.
  virtual void predict(const float* images, int count, float* probabilities) = 0;
  // The same, also writing each row's features: what the last dense layer
  // reads (in the paper's network the 64 outputs of dense 64 after its ReLU;
  // no dropout), count x feature_width() floats (host). Slides export them
  // for slide-level models (slide/tile_features.h). Synchronises.
  virtual void predict_features(const float* images, int count, float* probabilities,
                                float* features) = 0;
  // predict_features (features null: predict) on images as bytes and lookup
  // tables, bit for bit the same as on expand_byte_images' floats. As
  // train_bytes: a step that takes_byte_images() expands them itself, the
  // default on the host first. Synchronises.
  virtual void predict_bytes(const ByteImages& images, int count, float* probabilities,
                             float* features) {
    const HostFloats floats = expanded_on_host(images, count);
    if (features)
      predict_features(floats.data(), count, probabilities, features);
    else
      predict(floats.data(), count, probabilities);
  }
  int feature_width() const { return shape().denses.back().in; }
  // Forward and backward without update (tests, gradient checks). Dropout is
  // applied as in training when `training_mode`, using the current step.
  // Synchronises; grads (host) may be null.
  virtual StepResult gradients(const float* images, const int32_t* labels, int count,
                               bool training_mode, Parameters* grads) = 0;

  // Host copies in and out; they synchronise.
  virtual void set_parameters(const Parameters& params) = 0;
  virtual Parameters parameters() const = 0;
  // The learning rate of the following steps (a schedule calls it before
  // each step). ensures: the next update uses it; on a device backend it is
  // written to device memory on the step's stream (captured graphs read it
  // there), without synchronising. Not thread-safe with a concurrent train().
  virtual void set_learning_rate(float learning_rate) = 0;
  // Batch-norm running statistics (empty for a network without batch norm).
  // Training steps update them; predict() uses them. Host copies; synchronise.
  virtual Buffers buffers() const { return {}; }
  virtual void set_buffers(const Buffers& buffers) {
    require(buffers.empty(), "this backend's network has no batch-norm buffers");
  }
  // Adam state: first/second moments in the parameter layout, and the step.
  virtual void set_optimizer_state(const Parameters& m, const Parameters& v, int64_t step) = 0;
  virtual void optimizer_state(Parameters* m, Parameters* v, int64_t* step) const = 0;

  // Where a caller should make the host buffers of the images it passes to
  // train_slice(), so the step reads them without a copy (the CUDA step:
  // page-locked memory it sends by DMA); null: anywhere will do. Images
  // elsewhere are still accepted (copied first). The source outlives the step.
  virtual std::shared_ptr<HostBufferSource> input_buffers() const { return nullptr; }

  virtual MemoryReport memory() const = 0;
  virtual StepProfile profile() const = 0;
  virtual const NetworkShape& shape() const = 0;
  // Backend facts worth recording in metrics.json (algorithms chosen, library
  // versions, precision); an object.
  virtual nlohmann::json details() const { return nlohmann::json::object(); }

 protected:
  // The default byte routes' floats (train_bytes, predict_bytes): count rows
  // of the RGB input, expanded on the host.
  HostFloats expanded_on_host(const ByteImages& images, int count) const {
    check_byte_images(shape());
    const int64_t plane = int64_t(shape().height) * shape().width;
    HostFloats floats(size_t(count) * 3 * size_t(plane));
    expand_byte_images(images, count, count, plane, floats.data());
    return floats;
  }
};

// What the trainer hands a backend: where memory comes from and where work goes.
struct DeviceContext {
  // The resource every tensor, workspace and optimizer state comes from (its
  // memory space must be the backend's). nullptr: the backend uses its own
  // default (host memory for the CPU, cudaMalloc for CUDA), planned.
  MemoryResource* memory = nullptr;
  StreamHandle stream = nullptr;  // CUDA stream (nullptr = a stream the step creates)
  // true: one planned arena (allocator "plan"); false: per-tensor allocation
  // through `memory` every step (direct, pool, async).
  bool planned = true;
  size_t workspace_limit = size_t(1) << 30;  // per-operation workspace budget (bytes)
};

struct StepOptions {
  AdamConfig adam;
  uint64_t dropout_seed = 0;
  // Data parallelism: sums the flat gradient vector over all processes, in
  // place (`gradients`: host memory for the CPU backend, device memory on
  // `stream` for CUDA). Empty: one process.
  std::function<void(float* gradients, int64_t count, StreamHandle stream)> reduce_gradients;
  DeviceContext device;
  std::string precision = "fp32";  // fp32 | tf32 | bf16 (where the backend supports it)
  bool cudnn_graph = false;        // cuda: convolutions through cuDNN's graph API (legacy fallback)
  bool channels_last = false;      // cuda: the conv blocks' maps NHWC, filters KRSC
  bool cudnn_benchmark = false;    // time the algorithms instead of trusting heuristics
  bool cuda_graphs = false;        // capture the steady-state step and replay it
  // CUDA: the first conv block's weight gradient where our kernels apply
  // (backends/cuda/cuda_step_wgrad.cpp): "" = the route timed fastest when
  // the step is built; "cudnn", "direct" or "pooled" to take that one where
  // it applies (the self-test checks each).
  std::string cuda_small_wgrad_route;
  // CUDA: the first conv block's forward pass where our fused kernel applies
  // (backends/cuda/cuda_step_conv_pool.cpp): "" = the route timed fastest;
  // "cudnn" (cuDNN's convolution, then our pool kernel) or "fused" (our
  // convolution + pool kernel) to take that one (the self-test checks each).
  std::string cuda_conv1_forward_route;
  // CUDA: the weight gradients of the conv blocks after the first, where our
  // kernel from the pooled gradient applies
  // (backends/cuda/cuda_step_pooled_wgrad.cpp): "" = the route timed
  // fastest per block; "cudnn" or "pooled" to take that one in every block
  // (the self-test checks each; "pooled" refuses a network where a later
  // block cannot take it).
  std::string cuda_pooled_wgrad_route;
  // CUDA: the data gradients of the conv blocks after the first, where our
  // kernel from the pooled gradient applies
  // (backends/cuda/cuda_step_pooled_dgrad.cpp): "" = the route timed
  // fastest per block; "cudnn" or "pooled" to take that one in every block
  // (the self-test checks each; "pooled" refuses a network where a later
  // block cannot take it).
  std::string cuda_pooled_dgrad_route;
  // Time every operation and sum per layer and direction (StepProfile::layers).
  // CPU: a clock read per operation; CUDA: an event before every operation
  // (the step runs eagerly, without CUDA graphs). Off by default.
  bool profile_layers = false;
  // CPU: a block without batch norm whose whole-batch convolution output
  // exceeds this many bytes runs convolution and pool over slices of the
  // batch whose output fits (see backends/cpu/cpu_step.h); 0 = never slice.
  // kThreadScaledSlices (the default): cpu_slice_bytes_for(OpenMP threads).
  // Measured in docs/results/side-by-side-2core.md.
  static constexpr size_t kThreadScaledSlices = ~size_t(0);
  size_t cpu_slice_bytes = kThreadScaledSlices;
  // CPU: max pooling (and the ReLU backward on its output) by oneDNN's
  // primitives instead of the step's own kernels (backends/cpu/pool_kernels.h),
  // to measure one against the other (implies cpu_onednn_conv1). Layouts our
  // kernels cannot read use oneDNN's anyway.
  bool cpu_onednn_pooling = false;
  // CPU: the first conv block by oneDNN's convolution (and the pool above)
  // instead of the step's fused convolution + ReLU + pool kernels
  // (backends/cpu/conv_pool_kernels.h), to measure one against the other.
  // Blocks those kernels cannot run, and CPUs without AVX2 or AVX-512, use
  // oneDNN's anyway; so does cpu_onednn_pooling (the fused kernels pool as
  // well).
  bool cpu_onednn_conv1 = false;
  // CPU: 3x3 stride-1 convolutions by oneDNN's Winograd F(4x4, 3x3) where
  // it was measured to pay (winograd_pays in backends/cpu/cpu_backend.h) and
  // oneDNN has one (fp32 on AVX-512; else the direct convolution). Its
  // results differ from the direct one's in the last bits
  // (docs/results/cpu-winograd.md); false runs every convolution direct.
  bool cpu_winograd = true;
  // CPU: with cpu_winograd, the weight gradients by Winograd too; false takes
  // oneDNN's direct algorithm for them alone, to measure one against the
  // other where Winograd's backward scaled least (batch 10 on 16 threads:
  // docs/results/cpu-scaling-16core.md).
  bool cpu_winograd_weights = true;
  // CPU: the weight and bias gradients of the conv blocks after the first
  // whose pool is ours (no batch norm) from the pooled gradient
  // (backends/cpu/pooled_wgrad_kernels.h: a quarter of the terms, split
  // over output channels); false keeps oneDNN's (A/B).
  bool cpu_pooled_weight_gradients = true;
  // CPU: their data gradients likewise (backends/cpu/pooled_dgrad_kernels.h:
  // no pool backward then runs), where its AVX-512 or AVX2 version does;
  // false keeps oneDNN's (A/B).
  bool cpu_pooled_data_gradients = true;
  // CPU: the forward of the conv blocks after the first whose pool is ours
  // (no batch norm, 3x3, 2x2 pool; fp32 or bf16 maps) by our Winograd F(4x4, 3x3) with
  // bias, ReLU and the pool in one pass
  // (backends/cpu/winograd_pool_kernels.h), where cpu_winograd holds, it
  // pays (own_winograd_pays in backends/cpu/cpu_backend.h) and its AVX-512
  // or AVX2 version runs; false keeps oneDNN's convolution and our pool
  // (A/B).
  bool cpu_own_winograd_forward = true;
  // CPU: treat denormal floats as zero while the step runs (core/float_mode.h);
  // false keeps IEEE gradual underflow, as PyTorch does by default.
  bool flush_denormals = true;
  // The loss's target (nn/elementwise.h): the one-hot label by default.
  elementwise::LabelSmoothing label_smoothing;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // requires: shape == infer_shapes(spec, ...); options.device.memory, if set,
  //           outlives the step.
  // ensures:  a step with zeroed parameters and optimizer state at step 0, its
  //           memory placed (planned: allocated now — OutOfMemory is thrown here,
  //           before any training; per-tensor: allocated during each step).
  virtual std::unique_ptr<TrainingStep> compile(const ModelSpec& spec, const NetworkShape& shape,
                                                const StepOptions& options) = 0;
  // Why this backend's device cannot train in `precision` (one sentence), or
  // "" when it can; compile() refuses with the same sentence.
  virtual std::string precision_unsupported(const std::string& precision) const {
    (void)precision;
    return "";
  }
};

// The backend of a selected device (select_device below); a CUDA backend
// makes its device current before it creates handles or steps.
std::unique_ptr<Backend> make_backend(const Device& device);
std::vector<std::string> available_devices();
bool cuda_backend_built();
// Version, git revision and the backends built, with their libraries'
// versions (histocnn --version).
std::string build_description();
// Why --device cuda cannot work in this build (one clause, for messages).
std::string no_cuda_backend_reason();
// The one place a process takes its device, from --device (`kind`) and its
// local rank: "cpu", or for "cuda" GPU local_rank % devices, made current
// before any handle, pool or NCCL communicator exists. Throws naming --device
// for an unknown kind, and why there is no usable GPU ("no CUDA device: ...",
// or a build without CUDA).
Device select_device(const std::string& kind, int local_rank = 0);

}  // namespace histocnn
