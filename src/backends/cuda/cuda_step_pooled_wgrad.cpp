// The weight gradient of the conv blocks after the first, where our kernel
// from the pooled gradient applies (a max pool with the bias and ReLU after
// it, kernel 3 or 5: pooled_wgrad_kernels.h): its plans, and the kernels its
// contest times on scratch buffers when the step is built (the choice, made
// with the data gradient's: cuda_step_later_routes.cpp):
//   cudnn    cuDNN's algorithm chosen for the layer (by its heuristics, or
//            timed under --cudnn-benchmark) on the conv output's gradient
//   pooled   our kernel on the pooled gradient and argmax: a
//            quarter of the terms at 2x2 (1, 2 or 4 output channels a warp,
//            each timed: the same bits)
// The scratch's pooled gradient is positive everywhere and its argmax bytes
// zero (no window flagged not positive): our kernel
// sums every term, skipping none of the zeros ReLU gives in training, so its
// time here is its slowest.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "backends/cuda/device_timing.h"
#include "core/error.h"

namespace histocnn::cuda {

// Our kernel's plans for conv block k (each of outs_per_warp 1, 2, 4 that
// applies and whose partial sums fit the workspace limit); none for conv1
// (its own kernels, cuda_step_wgrad.cpp) or a block whose pool does not
// apply its bias and ReLU.
std::vector<PooledWgradPlan> CudaTrainingStep::pooled_wgrad_plans(const ConvLayer& c,
                                                                  size_t k) const {
  std::vector<PooledWgradPlan> plans;
  if (k == 0 || !c.bias_relu_in_pool) return plans;
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  for (int outs : {1, 2, 4}) {
    const PooledWgradPlan p =
        plan_pooled_wgrad(t.x, t.y, s.kernel, s.pad, s.pool, outs, target_blocks(), channels_last_);
    if (p.applies && p.workspace_bytes <= options_.device.workspace_limit) plans.push_back(p);
  }
  return plans;
}

// Each plan timed on scratch into `times`; the fastest and its time.
std::pair<PooledWgradPlan, float> CudaTrainingStep::time_pooled_wgrad(
    const std::vector<PooledWgradPlan>& plans, size_t k, nlohmann::json& times) {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  const size_t element = bf16_ ? sizeof(Bf16) : sizeof(float);
  const size_t pooled_count = size_t(t.pooled_dims.count());
  size_t workspace = 0;
  for (const auto& p : plans) workspace = std::max(workspace, p.workspace_bytes);
  DeviceScratch scratch(resource_, stream_);
  void* x = scratch.take(size_t(t.x.count()) * element);
  void* d_pooled = scratch.take_positive(pooled_count * element);
  auto* argmax = static_cast<uint8_t*>(scratch.take(pooled_count));
  auto* dw = static_cast<float*>(
      scratch.take(size_t(s.out_c) * size_t(s.in_c) * s.kernel * s.kernel * sizeof(float)));
  auto* ws = static_cast<float*>(scratch.take(workspace, false));
  std::pair<PooledWgradPlan, float> best{{}, -1.0f};
  Contenders ours =
      device_contenders(stream_, "conv" + std::to_string(k + 1) + "'s weight gradient", times);
  for (const auto& p : plans) {
    const float ms = ours.time(timing_key(pooled_wgrad_name(p.outs_per_warp)), [&] {
      if (bf16_)
        launch_pooled_wgrad(static_cast<Bf16*>(x), static_cast<Bf16*>(d_pooled), argmax, dw, ws,
                            t.x, t.y, t.pooled_channels_last, p, stream_);
      else
        launch_pooled_wgrad(static_cast<float*>(x), static_cast<float*>(d_pooled), argmax, dw, ws,
                            t.x, t.y, t.pooled_channels_last, p, stream_);
    });
    if (ms >= 0 && (best.second < 0 || ms < best.second)) best = {p, ms};
  }
  ours.require_one_ran(options_.cuda_pooled_wgrad_route == "pooled");
  return best;
}

// cuDNN's chosen weight-gradient algorithm for block k on scratch, with its
// workspace; -1 where that workspace does not fit beside the step's memory.
float CudaTrainingStep::time_cudnn_filter_choice(const ConvLayer& c, size_t k) {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  const size_t element = bf16_ ? sizeof(Bf16) : sizeof(float);
  try {
    DeviceScratch scratch(resource_, stream_);
    void* x = scratch.take(size_t(t.x.count()) * element);
    void* dy = scratch.take(size_t(t.y.count()) * element);
    void* dw = scratch.take(size_t(s.out_c) * size_t(s.in_c) * s.kernel * s.kernel * sizeof(float));
    const size_t bytes = c.workspace.backward_filter;
    void* ws = bytes ? scratch.take(bytes, false) : nullptr;
    HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
    return mean_device_ms(stream_, [&] {
      HISTOCNN_CUDA(cudnnConvolutionBackwardFilter(context_->cudnn, &kOne, c.x, x, c.y, dy, c.conv,
                                                   c.bwd_filter, ws, bytes, &kZero, c.w, dw));
    });
  } catch (const OutOfMemory&) {
    return -1.0f;
  }
}

// What the schedule is built with: every block's own kernels, as chosen.
std::vector<ConvRoutes> CudaTrainingStep::conv_routes() const {
  std::vector<ConvRoutes> routes;
  for (size_t k = 0; k < convs_.size(); ++k) {
    const ConvLayer& c = convs_[k];
    if (k == 0)
      routes.push_back({c.conv_pool.applies, c.small_wgrad.applies && c.small_wgrad.pool > 1});
    else
      routes.push_back({false, c.pooled_wgrad.applies, c.pooled_dgrad.applies});
  }
  return routes;
}

}  // namespace histocnn::cuda
