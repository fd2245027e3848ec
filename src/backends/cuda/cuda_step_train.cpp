// The CUDA step's training call: eager or as CUDA graphs, with the events that
// time its phases (and, with --profile-layers, every operation).
#include <algorithm>
#include <cstdio>

#include "backends/cuda/cuda_step.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

// The profile's name for an operation: layer and direction, as the CPU
// backend's ("conv1 forward", "fc2 backward", "loss", ...).
std::string op_label(const ScheduledOp& op) {
  const std::string conv = "conv" + std::to_string(op.layer + 1);
  const std::string fc = "fc" + std::to_string(op.layer + 1);
  switch (op.kind) {
    case OpKind::kInput:
      return "input copy";
    case OpKind::kConvForward:
    case OpKind::kConvPoolForward:
    case OpKind::kPoolForward:
    case OpKind::kBatchNormForward:
      return conv + " forward";
    case OpKind::kPoolReluBackward:
    case OpKind::kConvBackwardFilter:
    case OpKind::kConvBackwardData:
    case OpKind::kBatchNormBackward:
      return conv + " backward";
    case OpKind::kDenseForward:
    case OpKind::kDenseActivation:
      return fc + " forward";
    case OpKind::kDenseActivationBackward:
    case OpKind::kDenseBackwardWeights:
    case OpKind::kDenseBackwardData:
      return fc + " backward";
    case OpKind::kLoss:
      return "loss";
    case OpKind::kGlobalPoolForward:
      return "gap forward";
    case OpKind::kGlobalPoolBackward:
      return "gap backward";
    case OpKind::kToFloat:
      return "bf16 to fp32";
    case OpKind::kToBf16:
      return "fp32 to bf16";
  }
  return "other";
}

float elapsed_ms(cudaEvent_t from, cudaEvent_t to) {
  float ms = 0;
  HISTOCNN_CUDA(cudaEventElapsedTime(&ms, from, to));
  return ms;
}

}  // namespace

CudaTrainingStep::StepTiming& CudaTrainingStep::next_timing() {
  if (timed_ == timing_.size()) {
    StepTiming t;
    for (auto& e : t.phase) HISTOCNN_CUDA(cudaEventCreate(&e));
    if (options_.profile_layers) {
      t.ops.resize(schedule_.ops.size() + 1);
      for (auto& e : t.ops) HISTOCNN_CUDA(cudaEventCreate(&e));
    }
    timing_.push_back(std::move(t));
  }
  StepTiming& t = timing_[timed_++];
  t.allocator_forward = t.allocator_backward = 0;
  return t;
}

StepResult CudaTrainingStep::train_slice(const float* images, const int32_t* labels, int count,
                                         const BatchSlice& slice) {
  count_batch_norm_rows(count);
  stage(float_parts(images, count), labels, count, slice);
  return train_staged();
}

StepResult CudaTrainingStep::train_bytes(const ByteImages& images, const int32_t* labels, int count,
                                         const BatchSlice& slice) {
  check_byte_images(shape_);
  count_batch_norm_rows(count);
  stage(byte_parts(images, count), labels, count, slice);
  return train_staged();
}

void CudaTrainingStep::count_batch_norm_rows(int count) {
  if (!shape_.has_batch_norm()) return;
  require(count == shape_.batch, "batch norm trains on full batches: " + std::to_string(count) +
                                     " of " + std::to_string(shape_.batch) + " rows");
  ++batches_tracked_;
}

StepResult CudaTrainingStep::train_staged() {
  bind_handles();
  StepTiming& t = next_timing();
  // Graphs from the second step on (the first, eager, loads every kernel);
  // --profile-layers times each operation, so it stays eager.
  const bool graphs = options_.cuda_graphs && !options_.profile_layers && !graphs_failed_ &&
                      eager_steps_ >= 1 && (graph_forward_ || capture_graphs());
  if (graphs)
    launch_graphs(t);
  else
    train_eagerly(t);
  check_launch("training step");
  return {};
}

void CudaTrainingStep::train_eagerly(StepTiming& t) {
  HISTOCNN_CUDA(cudaEventRecord(t.phase[0], stream_));
  run(Mode::kTrain, true, 0, &t);  // forward, loss and backward; records phase[1]
  reduce_gradients();              // data parallelism: NCCL on this stream
  HISTOCNN_CUDA(cudaEventRecord(t.phase[2], stream_));
  update();
  HISTOCNN_CUDA(cudaEventRecord(t.phase[3], stream_));
  ++eager_steps_;
}

void CudaTrainingStep::launch_graphs(StepTiming& t) {
  // Inputs go in outside the graphs (the staging buffer alternates); their
  // copy counts as forward time, as in an eager step.
  HISTOCNN_CUDA(cudaEventRecord(t.phase[0], stream_));
  run_op(schedule_.ops[0], Mode::kTrain, true, 0);
  HISTOCNN_CUDA(cudaGraphLaunch(graph_forward_, stream_));
  HISTOCNN_CUDA(cudaEventRecord(t.phase[1], stream_));
  HISTOCNN_CUDA(cudaGraphLaunch(graph_backward_, stream_));
  HISTOCNN_CUDA(cudaEventRecord(t.phase[2], stream_));
  HISTOCNN_CUDA(cudaGraphLaunch(graph_update_, stream_));
  HISTOCNN_CUDA(cudaEventRecord(t.phase[3], stream_));
}

// The step after its input copy as three graphs. A failure (a call that
// throws while capturing, or an instantiation the driver refuses) turns
// graphs off for this step with a warning: the steps run eagerly, as correct.
bool CudaTrainingStep::capture_graphs() {
  const int loss = schedule_.loss_op, ops = int(schedule_.ops.size());
  try {
    graph_forward_ = capture([&] {
      for (int k = 1; k <= loss; ++k) run_op(schedule_.ops[size_t(k)], Mode::kTrain, true, 0);
    });
    graph_backward_ = capture([&] {
      for (int k = loss + 1; k < ops; ++k) run_op(schedule_.ops[size_t(k)], Mode::kTrain, true, 0);
      reduce_gradients();
    });
    graph_update_ = capture([&] { update(); });
    return true;
  } catch (const std::exception& e) {
    destroy_graphs();
    graphs_failed_ = true;
    details_["cuda_graphs"] = false;
    details_["cuda_graphs_failure"] = e.what();
    std::fprintf(stderr, "warning: CUDA graph capture failed (%s); running the step eagerly\n",
                 e.what());
    return false;
  }
}

cudaGraphExec_t CudaTrainingStep::capture(const std::function<void()>& body) {
  HISTOCNN_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    body();
  } catch (...) {
    // Leave capture mode whatever happened, so the stream works again.
    cudaGraph_t partial = nullptr;
    cudaStreamEndCapture(stream_, &partial);
    if (partial) cudaGraphDestroy(partial);
    cudaGetLastError();  // the invalidated capture's error is not the caller's
    throw;
  }
  cudaGraph_t graph = nullptr;
  HISTOCNN_CUDA(cudaStreamEndCapture(stream_, &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  HISTOCNN_CUDA(status);
  return exec;
}

void CudaTrainingStep::destroy_graphs() {
  for (cudaGraphExec_t* g : {&graph_forward_, &graph_backward_, &graph_update_}) {
    if (*g) cudaGraphExecDestroy(*g);
    *g = nullptr;
  }
}

// Per step: forward and backward as the device ran them, less the host
// seconds the allocator took inside them (with cudaMalloc/cudaFree the device
// waits for those: counted once, as allocator time); update; and with
// --profile-layers each operation's time under its layer and direction.
void CudaTrainingStep::collect_profile() {
  for (size_t i = 0; i < timed_; ++i) {
    const StepTiming& t = timing_[i];
    const double forward = elapsed_ms(t.phase[0], t.phase[1]) / 1e3;
    const double backward = elapsed_ms(t.phase[1], t.phase[2]) / 1e3;
    const double update = elapsed_ms(t.phase[2], t.phase[3]) / 1e3;
    profile_.forward += std::max(0.0, forward - t.allocator_forward);
    profile_.backward += std::max(0.0, backward - t.allocator_backward);
    profile_.allocator += t.allocator_forward + t.allocator_backward;
    profile_.update += update;
    profile_.steps++;
    if (t.ops.empty()) continue;
    for (size_t k = 0; k < schedule_.ops.size(); ++k)
      profile_.layers[op_label(schedule_.ops[k])] += elapsed_ms(t.ops[k], t.ops[k + 1]) / 1e3;
    profile_.layers["update"] += update;
  }
  timed_ = 0;
}

}  // namespace histocnn::cuda
