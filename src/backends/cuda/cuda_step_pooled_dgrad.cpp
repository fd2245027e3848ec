// The data gradient of the conv blocks after the first, where our kernel
// from the pooled gradient applies (a 2x2 max pool with the bias and ReLU
// after it, kernel 3 or 5: pooled_dgrad_kernels.h). Two routes, timed on
// scratch buffers when the step is built, the faster kept (or the one
// StepOptions::cuda_pooled_dgrad_route names); metrics.json records the
// times and `backward_data_route`:
//   cudnn    cuDNN's algorithm chosen for the layer, on the conv output's
//            gradient
//   pooled   our kernel on the pooled map, its gradient and argmax (tiles of
//            2x2 and 4x4 windows, each timed: the same bits)
// Where the block's weight gradient comes from the pooled gradient too, the
// pooled route also spares the pool backward its conv-output gradient (it
// then sums the bias gradient alone), so each route is timed with the pool
// backward it needs; otherwise the pool backward is the same on both and
// neither time counts it. The scratch's pooled map and gradient are
// positive everywhere: our kernel skips none of the terms ReLU zeroes in
// training, so its time here is its slowest.
#include <string>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
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

// Both routes of block k timed on scratch into `times` (keys: our plans'
// names, cuDNN's algorithm); returns {the fastest plan, its time, cuDNN's
// time} (cuDNN's -1 where its workspace does not fit).
CudaTrainingStep::DgradContest CudaTrainingStep::time_pooled_dgrad(
    const ConvLayer& c, size_t k, const std::vector<PooledDgradPlan>& plans,
    nlohmann::json& times) {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  const size_t element = bf16_ ? sizeof(Bf16) : sizeof(float);
  const size_t pooled_count = size_t(t.pooled_dims.count());
  const PoolMaps maps = t.pool_maps();
  // The pool backward each route needs (with the weight gradient from the
  // pooled gradient: the bias sums alone on ours, d_act too on cuDNN's).
  const bool spares_d_act = c.pooled_wgrad.applies;
  DeviceScratch scratch(resource_, stream_);
  void* pooled = scratch.take_positive(pooled_count * element);
  void* d_pooled = scratch.take_positive(pooled_count * element);
  auto* argmax = static_cast<uint8_t*>(scratch.take(pooled_count));
  void* w = scratch.take(size_t(s.out_c) * size_t(s.in_c) * s.kernel * s.kernel * element);
  void* dx = scratch.take(size_t(t.x.count()) * element, false);
  void* d_act = nullptr;  // cuDNN's route alone reads (and writes) the conv output's gradient
  auto* sums = static_cast<float*>(
      scratch.take(size_t(bias_partial_rows(maps)) * size_t(t.y.c) * sizeof(float), false));
  auto pool_backward = [&](bool write_d_act) {
    void* out = write_d_act ? d_act : nullptr;
    if (bf16_)
      launch_pool_relu_backward(static_cast<Bf16*>(pooled), static_cast<Bf16*>(d_pooled), argmax,
                                static_cast<Bf16*>(out), sums, maps, stream_);
    else
      launch_pool_relu_backward(static_cast<float*>(pooled), static_cast<float*>(d_pooled), argmax,
                                static_cast<float*>(out), sums, maps, stream_);
  };
  DgradContest contest;
  for (const auto& p : plans) {
    const float ms = mean_device_ms(stream_, [&] {
      if (spares_d_act) pool_backward(false);
      if (bf16_)
        launch_pooled_dgrad(static_cast<Bf16*>(pooled), static_cast<Bf16*>(d_pooled), argmax,
                            static_cast<Bf16*>(w), static_cast<Bf16*>(dx), t.x, t.y,
                            t.pooled_channels_last, p, stream_);
      else
        launch_pooled_dgrad(static_cast<float*>(pooled), static_cast<float*>(d_pooled), argmax,
                            static_cast<float*>(w), static_cast<float*>(dx), t.x, t.y,
                            t.pooled_channels_last, p, stream_);
    });
    times[timing_key(pooled_dgrad_name(p.tile_windows))] = ms;
    if (contest.pooled_ms < 0 || ms < contest.pooled_ms)
      contest.fastest = p, contest.pooled_ms = ms;
  }
  try {
    d_act = scratch.take(size_t(t.y.count()) * element);
    const size_t bytes = c.workspace.backward_data;
    void* ws = bytes ? scratch.take(bytes, false) : nullptr;
    HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
    contest.cudnn_ms = mean_device_ms(stream_, [&] {
      if (spares_d_act) pool_backward(true);
      HISTOCNN_CUDA(cudnnConvolutionBackwardData(context_->cudnn, &kOne, c.w, w, c.y, d_act, c.conv,
                                                 c.bwd_data, ws, bytes, &kZero, c.x, dx));
    });
    times[std::string("cudnn_") + bwd_data_name(int(c.bwd_data))] = contest.cudnn_ms;
  } catch (const OutOfMemory&) {
    times["cudnn"] = "its conv-output gradient and workspace did not fit";
  }
  if (spares_d_act) times["with_pool_backward"] = true;
  return contest;
}

// The routes of the file comment for block k, timed, the choice taken.
void CudaTrainingStep::choose_pooled_data_gradient(ConvLayer& c, size_t k, nlohmann::json& record) {
  if (k == 0) return;
  const std::string what = "conv" + std::to_string(k + 1) + "'s data gradient";
  const std::vector<PooledDgradPlan> plans = pooled_dgrad_plans(c, k);
  if (plans.empty()) {
    require(options_.cuda_pooled_dgrad_route != "pooled",
            what +
                ": the route 'pooled' does not apply to this network here (it needs a 2x2 max "
                "pool with the bias and ReLU after it, kernel 3 or 5, 'valid' or 'same' padding)");
    return;
  }
  nlohmann::json times = nlohmann::json::object();
  const DgradContest contest = time_pooled_dgrad(c, k, plans, times);
  record["backward_data_ms"] = times;
  const std::string route =
      fastest_route({{"cudnn", contest.cudnn_ms}, {"pooled", contest.pooled_ms}},
                    options_.cuda_pooled_dgrad_route, what);
  record["backward_data_route"] = route;
  if (route != "pooled") return;
  c.pooled_dgrad = contest.fastest;
  c.workspace.backward_data = 0;
  record["backward_data"] = pooled_dgrad_name(contest.fastest.tile_windows);
  record["backward_data_workspace"] = 0;
}

}  // namespace histocnn::cuda
