// The first conv block's weight gradient (3 input channels, where our direct
// kernels apply: wgrad_kernels.h). Three routes, each timed on scratch
// buffers when the step is built, the fastest kept (or the one
// StepOptions::cuda_small_wgrad_route names); metrics.json records the times:
//   cudnn    cuDNN's fastest deterministic algorithm on the conv output's
//            gradient, which the pool backward writes first
//   direct   our kernel on the same gradient (1, 2 or 4 output channels a
//            warp pass, each timed)
//   pooled   our kernel on the pooled gradient and argmax; the pool backward
//            then writes only the bias sums (conv1 has no data gradient, so
//            nothing else reads the conv output's gradient)
// A route's time counts the pool backward it needs.
#include <cctype>
#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

// Zeroed device buffers from the step's resource, returned when it goes.
class Scratch {
 public:
  Scratch(MemoryResource* resource, cudaStream_t stream) : resource_(resource), stream_(stream) {}
  ~Scratch() {
    cudaStreamSynchronize(stream_);
    for (auto it = held_.rbegin(); it != held_.rend(); ++it)
      resource_->deallocate(it->first, it->second, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* take(size_t bytes) {
    void* p = resource_->allocate(bytes, stream_);
    held_.push_back({p, bytes});
    HISTOCNN_CUDA(cudaMemsetAsync(p, 0, bytes, stream_));
    return p;
  }

 private:
  MemoryResource* resource_;
  cudaStream_t stream_;
  std::vector<std::pair<void*, size_t>> held_;
};

// Mean milliseconds of three runs of `run` after one warm-up, by events.
float mean_ms(cudaStream_t stream, const std::function<void()>& run) {
  cudaEvent_t start = nullptr, stop = nullptr;
  HISTOCNN_CUDA(cudaEventCreate(&start));
  HISTOCNN_CUDA(cudaEventCreate(&stop));
  run();
  HISTOCNN_CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < 3; ++i) run();
  HISTOCNN_CUDA(cudaEventRecord(stop, stream));
  check_launch("weight-gradient contest");
  HISTOCNN_CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  HISTOCNN_CUDA(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 3;
}

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

}  // namespace

// Our direct kernel's plan for conv block k (pool > 1: from the pooled
// gradient), or one that does not apply (not a 3-channel layer, or its
// partial sums exceed the workspace limit).
SmallWgradPlan CudaTrainingStep::small_wgrad_plan(size_t k, int pool) const {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  int multiprocessors = 0;
  HISTOCNN_CUDA(
      cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, context_->device));
  const int blocks = 4 * multiprocessors;
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
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  // From the pooled gradient where the pool applies the bias and ReLU (no
  // batch norm) and no data gradient reads the conv output's gradient.
  const SmallWgradPlan pooled =
      c.bias_relu_in_pool && k == 0 ? small_wgrad_plan(k, t.pool) : SmallWgradPlan{};
  // Scratch bounded so the trial fits a small --gpu-mem-limit and stays
  // below the step's own peak (a cuDNN algorithm needing more workspace
  // than that is not a contender).
  const size_t limit =
      std::min(options_.device.workspace_limit, std::max(plan.workspace_bytes, size_t(64) << 20));
  const size_t element = bf16_ ? sizeof(Bf16) : sizeof(float);
  const PoolMaps maps = t.pool_maps();
  const size_t pooled_count = size_t(t.pooled_dims.count());
  Scratch scratch(resource_, stream_);
  void* x = scratch.take(size_t(t.x.count()) * 4);
  void* dy = scratch.take(size_t(t.y.count()) * 4);
  auto* w = static_cast<float*>(scratch.take(size_t(s.out_c) * s.in_c * s.kernel * s.kernel * 4));
  auto* ws = static_cast<float*>(scratch.take(limit));
  void* p = pooled.applies ? scratch.take(pooled_count * element) : nullptr;
  void* dp = pooled.applies ? scratch.take(pooled_count * element) : nullptr;
  auto* argmax = pooled.applies ? static_cast<uint8_t*>(scratch.take(pooled_count)) : nullptr;
  auto* sums = pooled.applies
                   ? static_cast<float*>(scratch.take(size_t(bias_partial_rows(maps)) * t.y.c * 4))
                   : nullptr;
  auto as_bf16 = [](void* q) { return static_cast<Bf16*>(q); };
  auto as_float = [](void* q) { return static_cast<float*>(q); };
  nlohmann::json times = nlohmann::json::object();
  // Ours on the conv output's gradient: the fastest register block.
  SmallWgradPlan direct = plan;
  float direct_ms = -1;
  for (int out_block : {1, 2, 4}) {
    if (!small_wgrad_out_block_supported(s.kernel, out_block)) continue;
    SmallWgradPlan v = plan;
    v.out_block = out_block;
    const float ms = mean_ms(stream_, [&] {
      if (bf16_)
        launch_small_wgrad(as_bf16(x), as_bf16(dy), w, ws, t.x, t.y, s.kernel, s.pad, v, stream_);
      else
        launch_small_wgrad(as_float(x), as_float(dy), w, ws, t.x, t.y, s.kernel, s.pad, v, stream_);
    });
    times[lower(small_wgrad_name(v))] = ms;
    if (direct_ms < 0 || ms < direct_ms) direct = v, direct_ms = ms;
  }
  // Ours on the pooled gradient, and the pool backward either way.
  float pooled_ms = -1, scatter_ms = 0, sums_ms = 0;
  if (pooled.applies) {
    const bool pl = t.pooled_channels_last;
    pooled_ms = mean_ms(stream_, [&] {
      if (bf16_)
        launch_small_wgrad_pooled(as_bf16(x), as_bf16(p), as_bf16(dp), argmax, w, ws, t.x, t.y, pl,
                                  s.kernel, s.pad, pooled, stream_);
      else
        launch_small_wgrad_pooled(as_float(x), as_float(p), as_float(dp), argmax, w, ws, t.x, t.y,
                                  pl, s.kernel, s.pad, pooled, stream_);
    });
    auto pool_backward = [&](bool write_gradient) {
      return mean_ms(stream_, [&] {
        if (bf16_)
          launch_pool_relu_backward(as_bf16(p), as_bf16(dp), argmax,
                                    write_gradient ? as_bf16(dy) : nullptr, sums, maps, stream_);
        else
          launch_pool_relu_backward(as_float(p), as_float(dp), argmax,
                                    write_gradient ? as_float(dy) : nullptr, sums, maps, stream_);
      });
    };
    scatter_ms = pool_backward(true);
    sums_ms = pool_backward(false);
    times["histocnn_pooled"] = pooled_ms;
    times["pool_backward_writing_the_gradient"] = scatter_ms;
    times["pool_backward_bias_sums_only"] = sums_ms;
  }
  // cuDNN's: every algorithm it offers, timed by cuDNN itself.
  float cudnn_ms = -1;
  int cudnn_best = -1;
  if (cudnn_has_one) {
    constexpr int kMax = 16;
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
    int returned = 0;
    HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
    HISTOCNN_CUDA(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        context_->cudnn, c.x, x, c.y, dy, c.conv, c.w, w, kMax, &returned, perf, ws, limit));
    sync();
    const auto timed = candidates(perf, returned, true);
    cudnn_best = choose_algorithm(timed, limit, true);
    for (const auto& a : timed)
      if (a.algorithm == cudnn_best) cudnn_ms = a.milliseconds;
    times[std::string("cudnn_") + bwd_filter_name(cudnn_best)] = cudnn_ms;
  } else {
    times["cudnn"] = "no deterministic algorithm";
  }
  record["backward_filter_ms"] = times;
  const std::string route =
      weight_gradient_route(cudnn_ms < 0 ? -1 : cudnn_ms + scatter_ms, direct_ms + scatter_ms,
                            pooled_ms < 0 ? -1 : pooled_ms + sums_ms);
  record["backward_filter_route"] = route;
  if (route != "cudnn") return take_small_wgrad(c, route == "pooled" ? pooled : direct, record);
  c.bwd_filter = cudnnConvolutionBwdFilterAlgo_t(cudnn_best);
  HISTOCNN_CUDA(cudnnGetConvolutionBackwardFilterWorkspaceSize(
      context_->cudnn, c.x, c.y, c.conv, c.w, c.bwd_filter, &c.workspace.backward_filter));
  record["backward_filter"] = bwd_filter_name(cudnn_best);
  record["backward_filter_workspace"] = c.workspace.backward_filter;
}

// The route of the lowest time (negative: not a contender), or the one
// StepOptions::cuda_small_wgrad_route forces where it is a contender.
std::string CudaTrainingStep::weight_gradient_route(float cudnn_ms, float direct_ms,
                                                    float pooled_ms) const {
  const std::vector<std::pair<std::string, float>> routes = {
      {"cudnn", cudnn_ms}, {"direct", direct_ms}, {"pooled", pooled_ms}};
  const std::string& forced = options_.cuda_small_wgrad_route;
  std::string best;
  float best_ms = -1;
  for (const auto& [name, ms] : routes) {
    if (ms < 0) continue;
    if (name == forced) return name;
    if (best_ms < 0 || ms < best_ms) best = name, best_ms = ms;
  }
  require(forced.empty(), "conv1's weight gradient: the route '" + forced +
                              "' does not apply to this network here (" + best + " does)");
  return best;
}

}  // namespace histocnn::cuda
