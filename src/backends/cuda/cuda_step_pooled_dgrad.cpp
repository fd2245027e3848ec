// The data gradient of the conv blocks after the first, where our kernel
// from the pooled gradient applies (a 2x2 max pool with the bias and ReLU
// after it, kernel 3 or 5: pooled_dgrad_kernels.h): its plans, and the
// kernels its contest times on scratch buffers when the step is built (the
// choice, made with the weight gradient's: cuda_step_later_routes.cpp):
//   cudnn    cuDNN's algorithm chosen for the layer, on the conv output's
//            gradient
//   pooled   our kernel on the pooled gradient and argmax (tiles of
//            2x2 and 4x4 windows, each timed: the same bits)
//   the pool backward, writing the conv output's gradient and the bias
//            sums (what any of cuDNN's routes needs), or the bias sums alone
//            (what the pair of pooled routes needs)
// The scratch's pooled gradient is positive everywhere and its argmax bytes
// zero (no window flagged not positive): our kernel
// skips none of the terms ReLU zeroes in training, so its time here is its
// slowest.
#include <string>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "backends/cuda/device_timing.h"
#include "core/error.h"

namespace histocnn::cuda {

// Our kernel's plans for conv block k (tiles of 2x2 and 4x4 windows); none
// for conv1 (no data gradient) or a block whose pool does not apply its
// bias and ReLU.
std::vector<PooledDgradPlan> CudaTrainingStep::pooled_dgrad_plans(const ConvLayer& c,
                                                                  size_t k) const {
  std::vector<PooledDgradPlan> plans;
  if (k == 0 || !c.bias_relu_in_pool) return plans;
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  for (int tile : {2, 4}) {
    const PooledDgradPlan p =
        plan_pooled_dgrad(t.x, t.y, s.kernel, s.pad, s.pool, tile, channels_last_);
    if (p.applies) plans.push_back(p);
  }
  return plans;
}

// Block k's data-gradient kernels timed alone on scratch (our plans' times
// into `times` too); cuDNN's -1 where its conv-output gradient and
// workspace do not fit; the pool backward only with `pool_backward` (the
// weight gradient has a pooled route too).
CudaTrainingStep::DgradContest CudaTrainingStep::time_pooled_dgrad(
    const ConvLayer& c, size_t k, const std::vector<PooledDgradPlan>& plans, bool pool_backward,
    nlohmann::json& times) {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  const size_t element = bf16_ ? sizeof(Bf16) : sizeof(float);
  const size_t pooled_count = size_t(t.pooled_dims.count());
  const PoolMaps maps = t.pool_maps();
  DeviceScratch scratch(resource_, stream_);
  void* d_pooled = scratch.take_positive(pooled_count * element);
  auto* argmax = static_cast<uint8_t*>(scratch.take(pooled_count));
  void* w = scratch.take(size_t(s.out_c) * size_t(s.in_c) * s.kernel * s.kernel * element);
  void* dx = scratch.take(size_t(t.x.count()) * element, false);
  auto* sums = static_cast<float*>(
      scratch.take(size_t(bias_partial_rows(maps)) * size_t(t.y.c) * sizeof(float), false));
  DgradContest contest;
  Contenders ours =
      device_contenders(stream_, "conv" + std::to_string(k + 1) + "'s data gradient", times);
  for (const auto& p : plans) {
    const float ms = ours.time(timing_key(pooled_dgrad_name(p.tile_windows)), [&] {
      if (bf16_)
        launch_pooled_dgrad(static_cast<Bf16*>(d_pooled), argmax, static_cast<Bf16*>(w),
                            static_cast<Bf16*>(dx), t.x, t.y, t.pooled_channels_last, p, stream_);
      else
        launch_pooled_dgrad(static_cast<float*>(d_pooled), argmax, static_cast<float*>(w),
                            static_cast<float*>(dx), t.x, t.y, t.pooled_channels_last, p, stream_);
    });
    if (ms >= 0 && (contest.pooled_ms < 0 || ms < contest.pooled_ms))
      contest.fastest = p, contest.pooled_ms = ms;
  }
  ours.require_one_ran(options_.cuda_pooled_dgrad_route == "pooled");
  // The pool backward into `d_act` (null: the bias sums alone).
  auto pool_backward_ms = [&](void* d_act) {
    return mean_device_ms(stream_, [&] {
      if (bf16_)
        launch_pool_relu_backward(nullptr, static_cast<Bf16*>(d_pooled), argmax,
                                  static_cast<Bf16*>(d_act), sums, maps, stream_);
      else
        launch_pool_relu_backward(nullptr, static_cast<float*>(d_pooled), argmax,
                                  static_cast<float*>(d_act), sums, maps, stream_);
    });
  };
  if (pool_backward) contest.pool_bias_ms = pool_backward_ms(nullptr);
  try {
    if (pool_backward) contest.pool_full_ms = -1;  // until its output fits
    void* d_act = scratch.take(size_t(t.y.count()) * element);
    if (pool_backward) contest.pool_full_ms = pool_backward_ms(d_act);
    const size_t bytes = c.workspace.backward_data;
    void* ws = bytes ? scratch.take(bytes, false) : nullptr;
    HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
    contest.cudnn_ms = mean_device_ms(stream_, [&] {
      HISTOCNN_CUDA(cudnnConvolutionBackwardData(context_->cudnn, &kOne, c.w, w, c.y, d_act, c.conv,
                                                 c.bwd_data, ws, bytes, &kZero, c.x, dx));
    });
    times[std::string("cudnn_") + bwd_data_name(int(c.bwd_data))] = contest.cudnn_ms;
  } catch (const OutOfMemory&) {
    times["cudnn"] = "its conv-output gradient and workspace did not fit";
  }
  return contest;
}

}  // namespace histocnn::cuda
