// The first conv block's weight gradient (3 input channels, where our direct
// kernels apply: wgrad_kernels.h). Three routes, each timed on scratch
// buffers when the step is built, the fastest kept (or the one
// StepOptions::cuda_small_wgrad_route names); metrics.json records the times:
//   cudnn    cuDNN's fastest deterministic algorithm on the conv output's
//            gradient, which the pool backward writes first
//   direct   our kernel on the same gradient (1, 2 or 4 output channels a
//            warp pass, each timed)
//   pooled   our kernel on the pooled gradient and argmax, summing the bias
//            gradient from the same terms: no pool backward runs (conv1 has
//            no data gradient, so nothing reads the conv output's gradient)
// A route's time counts the pool backward it needs.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "backends/cuda/device_timing.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

// One contest's setting: conv block k's tensors and shape, the maps' type,
// and zeroed scratch standing in for its tensors (the pooled ones only where
// the pooled route applies).
struct Contest {
  cudaStream_t stream;
  bool bf16;
  CudaSchedule::ConvTensors t;
  ConvShape s;
  PoolMaps maps;
  void *x = nullptr, *dy = nullptr, *d_pooled = nullptr;
  float *w = nullptr, *db = nullptr, *ws = nullptr, *sums = nullptr;
  uint8_t* argmax = nullptr;
};

// Our kernel on the conv output's gradient: every register block timed
// (those the device refuses drop out); the fastest plan and its time (-1:
// none ran).
std::pair<SmallWgradPlan, float> time_direct(const Contest& k, const SmallWgradPlan& plan,
                                             Contenders& ours) {
  std::pair<SmallWgradPlan, float> best{plan, -1.0f};
  for (int out_block : {1, 2, 4}) {
    if (!small_wgrad_out_block_supported(k.s.kernel, out_block)) continue;
    SmallWgradPlan v = plan;
    v.out_block = out_block;
    const float ms = ours.time(timing_key(small_wgrad_name(v)), [&] {
      if (k.bf16)
        launch_small_wgrad(static_cast<Bf16*>(k.x), static_cast<Bf16*>(k.dy), k.w, k.ws, k.t.x,
                           k.t.y, k.s.kernel, k.s.pad, v, k.stream);
      else
        launch_small_wgrad(static_cast<float*>(k.x), static_cast<float*>(k.dy), k.w, k.ws, k.t.x,
                           k.t.y, k.s.kernel, k.s.pad, v, k.stream);
    });
    if (ms >= 0 && (best.second < 0 || ms < best.second)) best = {v, ms};
  }
  return best;
}

// Our kernel on the pooled gradient (-1: the device refused it).
float time_pooled(const Contest& k, const SmallWgradPlan& plan, Contenders& ours) {
  const bool last = k.t.pooled_channels_last;
  return ours.time("histocnn_pooled_with_bias", [&] {
    if (k.bf16)
      launch_small_wgrad_pooled(static_cast<Bf16*>(k.x), static_cast<Bf16*>(k.d_pooled), k.argmax,
                                k.w, k.db, k.ws, k.t.x, k.t.y, last, k.s.kernel, k.s.pad, plan,
                                k.stream);
    else
      launch_small_wgrad_pooled(static_cast<float*>(k.x), static_cast<float*>(k.d_pooled), k.argmax,
                                k.w, k.db, k.ws, k.t.x, k.t.y, last, k.s.kernel, k.s.pad, plan,
                                k.stream);
  });
}

// The pool backward the cudnn and direct routes need: the conv output's
// gradient and the bias sums.
float time_pool_backward(const Contest& k) {
  return mean_device_ms(k.stream, [&] {
    if (k.bf16)
      launch_pool_relu_backward(nullptr, static_cast<Bf16*>(k.d_pooled), k.argmax,
                                static_cast<Bf16*>(k.dy), k.sums, k.maps, k.stream);
    else
      launch_pool_relu_backward(nullptr, static_cast<float*>(k.d_pooled), k.argmax,
                                static_cast<float*>(k.dy), k.sums, k.maps, k.stream);
  });
}

}  // namespace

// Our direct kernel's plan for conv block k (pool > 1: from the pooled
// gradient), or one that does not apply (not a 3-channel layer, or its
// partial sums exceed the workspace limit).
SmallWgradPlan CudaTrainingStep::small_wgrad_plan(size_t k, int pool) const {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  const int blocks = target_blocks();
  SmallWgradPlan plan =
      pool > 1 ? plan_small_wgrad_pooled(t.x, t.y, s.kernel, s.pad, pool, blocks, channels_last_)
               : plan_small_wgrad(t.x, t.y, s.kernel, s.pad, blocks, channels_last_);
  if (plan.workspace_bytes > options_.device.workspace_limit) plan.applies = false;
  return plan;
}

void CudaTrainingStep::take_small_wgrad(ConvLayer& c, const SmallWgradPlan& plan,
                                        nlohmann::json& record) const {
  c.small_wgrad = plan;
  c.workspace.backward_filter = plan.workspace_bytes;
  record["backward_filter"] = small_wgrad_name(plan);
  record["backward_filter_workspace"] = plan.workspace_bytes;
}

// The routes of the file comment, timed; `cudnn_has_one`: cuDNN offers a
// deterministic algorithm (when its route wins, its fastest one timed here
// replaces the heuristics' choice).
void CudaTrainingStep::choose_weight_gradient(ConvLayer& c, size_t k, const SmallWgradPlan& plan,
                                              bool cudnn_has_one, nlohmann::json& record) {
  if (!plan.applies) return;
  Contest contest{stream_, bf16_, conv_tensors(k), shape_.convs[k], {}};
  const CudaSchedule::ConvTensors& t = contest.t;
  contest.maps = t.pool_maps();
  // From the pooled gradient where the pool applies the bias and ReLU (no
  // batch norm) and no data gradient reads the conv output's gradient.
  const SmallWgradPlan pooled =
      c.bias_relu_in_pool && k == 0 ? small_wgrad_plan(k, t.pool) : SmallWgradPlan{};
  // Scratch bounded so the trial fits a small --gpu-mem-limit and stays
  // below the step's own peak (a cuDNN algorithm needing more workspace
  // than that is not a contender).
  const size_t limit =
      std::min(options_.device.workspace_limit,
               std::max({plan.workspace_bytes, pooled.workspace_bytes, size_t(64) << 20}));
  DeviceScratch scratch(resource_, stream_);
  contest.x = scratch.take(size_t(t.x.count()) * 4);
  contest.dy = scratch.take(size_t(t.y.count()) * 4);
  contest.w = static_cast<float*>(scratch.take(size_t(plan.taps) * t.y.c * 4));
  contest.ws = static_cast<float*>(scratch.take(limit, false));
  if (pooled.applies) {
    const size_t count = size_t(t.pooled_dims.count());
    contest.d_pooled = scratch.take(count * (bf16_ ? sizeof(Bf16) : sizeof(float)));
    contest.argmax = static_cast<uint8_t*>(scratch.take(count));
    contest.sums = static_cast<float*>(
        scratch.take(size_t(bias_partial_rows(contest.maps)) * size_t(t.y.c) * 4));
    contest.db = static_cast<float*>(scratch.take(size_t(t.y.c) * 4));
  }
  nlohmann::json times = nlohmann::json::object();
  const std::string& forced = options_.cuda_small_wgrad_route;
  Contenders direct_kernels = device_contenders(stream_, "conv1's weight gradient, direct", times);
  const auto [direct, direct_ms] = time_direct(contest, plan, direct_kernels);
  // Without a deterministic algorithm of cuDNN's, ours is the only route.
  direct_kernels.require_one_ran(forced == "direct" || (!cudnn_has_one && !pooled.applies));
  float pooled_ms = -1, scatter_ms = 0;
  if (pooled.applies) {
    Contenders pooled_kernel = device_contenders(stream_, "conv1's weight gradient, pooled", times);
    pooled_ms = time_pooled(contest, pooled, pooled_kernel);
    pooled_kernel.require_one_ran(forced == "pooled" || (!cudnn_has_one && direct_ms < 0));
    times["pool_backward_writing_the_gradient"] = scatter_ms = time_pool_backward(contest);
  }
  const auto [cudnn_best, cudnn_ms] =
      cudnn_has_one ? time_cudnn_filter(c, contest.x, contest.dy, contest.w, contest.ws, limit)
                    : std::pair<int, float>{-1, -1.0f};
  if (cudnn_has_one)
    times[std::string("cudnn_") + bwd_filter_name(cudnn_best)] = cudnn_ms;
  else
    times["cudnn"] = "no deterministic algorithm";
  record["backward_filter_ms"] = times;
  const std::string route =
      weight_gradient_route(cudnn_ms < 0 ? -1 : cudnn_ms + scatter_ms,
                            direct_ms < 0 ? -1 : direct_ms + scatter_ms, pooled_ms);
  record["backward_filter_route"] = route;
  if (route != "cudnn") return take_small_wgrad(c, route == "pooled" ? pooled : direct, record);
  c.bwd_filter = cudnnConvolutionBwdFilterAlgo_t(cudnn_best);
  HISTOCNN_CUDA(cudnnGetConvolutionBackwardFilterWorkspaceSize(
      context_->cudnn, c.x, c.y, c.conv, c.w, c.bwd_filter, &c.workspace.backward_filter));
  record["backward_filter"] = bwd_filter_name(cudnn_best);
  record["backward_filter_workspace"] = c.workspace.backward_filter;
}

// cuDNN's weight-gradient algorithms for the layer, every one timed by
// cuDNN on the scratch; its fastest deterministic one within `limit` and
// that one's time (-1, -1: none).
std::pair<int, float> CudaTrainingStep::time_cudnn_filter(const ConvLayer& c, void* x, void* dy,
                                                          float* w, float* ws, size_t limit) {
  constexpr int kMax = 16;
  cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
  int returned = 0;
  HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
  HISTOCNN_CUDA(cudnnFindConvolutionBackwardFilterAlgorithmEx(
      context_->cudnn, c.x, x, c.y, dy, c.conv, c.w, w, kMax, &returned, perf, ws, limit));
  sync();
  const auto timed = candidates(perf, returned, true);
  const int best = choose_algorithm(timed, limit, true);
  for (const auto& a : timed)
    if (a.algorithm == best) return {best, a.milliseconds};
  return {-1, -1.0f};
}

// The route of the lowest time (negative: not a contender), or the one
// StepOptions::cuda_small_wgrad_route forces where it is a contender.
std::string CudaTrainingStep::weight_gradient_route(float cudnn_ms, float direct_ms,
                                                    float pooled_ms) const {
  return fastest_route({{"cudnn", cudnn_ms}, {"direct", direct_ms}, {"pooled", pooled_ms}},
                       options_.cuda_small_wgrad_route, "conv1's weight gradient");
}

}  // namespace histocnn::cuda
