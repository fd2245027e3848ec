// The weight gradient of the conv blocks after the first, where our kernel
// from the pooled gradient applies (a max pool with the bias and ReLU after
// it, kernel 3 or 5: pooled_wgrad_kernels.h). Two routes, timed on scratch
// buffers when the step is built, the faster kept (or the one
// StepOptions::cuda_pooled_wgrad_route names); metrics.json records the
// times and `backward_filter_route`:
//   cudnn    cuDNN's algorithm chosen for the layer (by its heuristics, or
//            timed under --cudnn-benchmark) on the conv output's gradient
//   pooled   our kernel on the pooled map, its gradient and argmax: a
//            quarter of the terms at 2x2 (1, 2 or 4 output channels a warp,
//            each timed: the same bits)
// The pool backward runs on either route (the block's data gradient reads
// the conv output's gradient), so neither time counts it. The scratch's
// pooled map and gradient are positive everywhere: our kernel sums every
// term, skipping none of the zeros ReLU gives in training, so its time here
// is its slowest.
#include <algorithm>
#include <string>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
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
  void* pooled = scratch.take_positive(pooled_count * element);
  void* d_pooled = scratch.take_positive(pooled_count * element);
  auto* argmax = static_cast<uint8_t*>(scratch.take(pooled_count));
  auto* dw = static_cast<float*>(
      scratch.take(size_t(s.out_c) * size_t(s.in_c) * s.kernel * s.kernel * sizeof(float)));
  auto* ws = static_cast<float*>(scratch.take(workspace, false));
  std::pair<PooledWgradPlan, float> best{{}, -1.0f};
  for (const auto& p : plans) {
    const float ms = mean_device_ms(stream_, [&] {
      if (bf16_)
        launch_pooled_wgrad(static_cast<Bf16*>(x), static_cast<Bf16*>(pooled),
                            static_cast<Bf16*>(d_pooled), argmax, dw, ws, t.x, t.y,
                            t.pooled_channels_last, p, stream_);
      else
        launch_pooled_wgrad(static_cast<float*>(x), static_cast<float*>(pooled),
                            static_cast<float*>(d_pooled), argmax, dw, ws, t.x, t.y,
                            t.pooled_channels_last, p, stream_);
    });
    times[timing_key(pooled_wgrad_name(p.outs_per_warp))] = ms;
    if (best.second < 0 || ms < best.second) best = {p, ms};
  }
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

// The routes of the file comment for block k, timed; `cudnn_has_one`:
// cuDNN offers a deterministic algorithm (c.bwd_filter).
void CudaTrainingStep::choose_pooled_weight_gradient(ConvLayer& c, size_t k, bool cudnn_has_one,
                                                     nlohmann::json& record) {
  const std::string what = "conv" + std::to_string(k + 1) + "'s weight gradient";
  const std::vector<PooledWgradPlan> plans = pooled_wgrad_plans(c, k);
  if (plans.empty()) {
    require(k == 0 || options_.cuda_pooled_wgrad_route != "pooled",
            what +
                ": the route 'pooled' does not apply to this network here (it needs a max "
                "pool with the bias and ReLU after it, kernel 3 or 5, and its partial sums "
                "within the workspace limit)");
    return;
  }
  nlohmann::json times = nlohmann::json::object();
  const auto [fastest, pooled_ms] = time_pooled_wgrad(plans, k, times);
  const float cudnn_ms = cudnn_has_one ? time_cudnn_filter_choice(c, k) : -1.0f;
  if (cudnn_ms >= 0)
    times[std::string("cudnn_") + bwd_filter_name(int(c.bwd_filter))] = cudnn_ms;
  else
    times["cudnn"] = cudnn_has_one ? "its workspace did not fit" : "no deterministic algorithm";
  record["backward_filter_ms"] = times;
  const std::string route = fastest_route({{"cudnn", cudnn_ms}, {"pooled", pooled_ms}},
                                          options_.cuda_pooled_wgrad_route, what);
  record["backward_filter_route"] = route;
  if (route != "pooled") return;
  c.pooled_wgrad = fastest;
  c.workspace.backward_filter = fastest.workspace_bytes;
  record["backward_filter"] = pooled_wgrad_name(fastest.outs_per_warp);
  record["backward_filter_workspace"] = fastest.workspace_bytes;
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
