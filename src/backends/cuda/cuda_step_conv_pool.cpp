// The first conv block's forward pass, where our fused kernel applies (3
// input channels, a 2x2 max pool with the bias and ReLU after it:
// conv_pool_kernels.h). Two routes, timed on scratch buffers when the step
// is built, the faster kept (or the one StepOptions::cuda_conv1_forward_route
// names); metrics.json records the times and `forward_route`:
//   cudnn   cuDNN's forward algorithm chosen for the layer, writing the conv
//           output, then our pool kernel reading it back
//   fused   our kernel, one or two pooled positions a thread and 8 or all
//           output channels a patch (each timed): the conv output is never
//           written, and the schedule drops it
// The cuDNN route is timed through the legacy API even under --cudnn-graph
// (the graph's engine runs the same kind of kernel).
#include <string>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

// Conv block k's scratch stand-ins: input, conv output (cuDNN's route only:
// null for the fused one, which has none), pooled map and argmax in the
// maps' type, fp32 weights (room for their bf16 or KRSC copy too) and
// biases, and cuDNN's forward workspace.
struct ForwardScratch {
  void *x, *y, *pooled, *w, *ws;
  float* bias;
  uint8_t* argmax;
};
ForwardScratch take_forward_scratch(DeviceScratch& scratch, const CudaSchedule::ConvTensors& t,
                                    const ConvShape& s, size_t element, bool conv_output,
                                    size_t workspace) {
  const size_t pooled = size_t(t.pooled_dims.count());
  ForwardScratch f{};
  f.x = scratch.take(size_t(t.x.count()) * element);
  f.y = conv_output ? scratch.take(size_t(t.y.count()) * element) : nullptr;
  f.pooled = scratch.take(pooled * element);
  f.argmax = static_cast<uint8_t*>(scratch.take(pooled));
  f.w = scratch.take(size_t(s.out_c) * size_t(s.in_c) * size_t(s.kernel) * size_t(s.kernel) * 4);
  f.bias = static_cast<float*>(scratch.take(size_t(s.out_c) * 4));
  f.ws = workspace ? scratch.take(workspace, false) : nullptr;
  return f;
}

}  // namespace

int CudaTrainingStep::target_blocks() const {
  int multiprocessors = 0;
  HISTOCNN_CUDA(
      cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, context_->device));
  return 4 * multiprocessors;
}

// Our fused kernel's plan for conv block k, or one that does not apply (not
// the first block, batch norm, or a shape it was not compiled for).
ConvPoolPlan CudaTrainingStep::conv_pool_plan(size_t k) const {
  const ConvShape& s = shape_.convs[k];
  if (k != 0 || s.batch_norm) return {};
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  return plan_conv_pool(t.x, t.y, s.kernel, s.pad, s.pool, target_blocks(), channels_last_,
                        t.pooled_channels_last);
}

float CudaTrainingStep::time_cudnn_forward_and_pool(const ConvLayer& c,
                                                    const CudaSchedule::ConvTensors& t,
                                                    DeviceScratch& scratch) {
  const ForwardScratch f =
      take_forward_scratch(scratch, t, shape_.convs[0], bf16_ ? 2 : 4, true, c.workspace.forward);
  HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
  return mean_device_ms(stream_, [&] {
    HISTOCNN_CUDA(cudnnConvolutionForward(context_->cudnn, &kOne, c.x, f.x, c.w, f.w, c.conv, c.fwd,
                                          f.ws, c.workspace.forward, &kZero, c.y, f.y));
    if (bf16_)
      launch_max_pool_forward(static_cast<Bf16*>(f.y), f.bias, static_cast<Bf16*>(f.pooled),
                              f.argmax, t.pool_maps(), stream_);
    else
      launch_max_pool_forward(static_cast<float*>(f.y), f.bias, static_cast<float*>(f.pooled),
                              f.argmax, t.pool_maps(), stream_);
  });
}

float CudaTrainingStep::time_conv_pool(const ConvPoolPlan& plan, const CudaSchedule::ConvTensors& t,
                                       DeviceScratch& scratch, Contenders& ours) {
  const ConvShape& s = shape_.convs[0];
  const ForwardScratch f = take_forward_scratch(scratch, t, s, bf16_ ? 2 : 4, false, 0);
  const auto* w = static_cast<const float*>(f.w);
  return ours.time(timing_key(conv_pool_name(plan)), [&] {
    if (bf16_)
      launch_conv_pool_forward(static_cast<Bf16*>(f.x), w, f.bias, static_cast<Bf16*>(f.pooled),
                               f.argmax, t.x, t.y, s.kernel, s.pad, plan, stream_);
    else
      launch_conv_pool_forward(static_cast<float*>(f.x), w, f.bias, static_cast<float*>(f.pooled),
                               f.argmax, t.x, t.y, s.kernel, s.pad, plan, stream_);
  });
}

// The routes of the file comment, timed where the fused kernel applies.
void CudaTrainingStep::choose_forward(ConvLayer& c, size_t k, nlohmann::json& record) {
  if (k != 0) return;
  const ConvPoolPlan plan = c.bias_relu_in_pool ? conv_pool_plan(k) : ConvPoolPlan{};
  float cudnn_ms = 0, fused_ms = -1;
  ConvPoolPlan fastest = plan;
  if (plan.applies) {
    const CudaSchedule::ConvTensors t = conv_tensors(k);
    nlohmann::json times = nlohmann::json::object();
    {
      DeviceScratch scratch(resource_, stream_);
      cudnn_ms = time_cudnn_forward_and_pool(c, t, scratch);
    }
    times[std::string("cudnn_") + fwd_name(int(c.fwd)) + "_then_pool"] = cudnn_ms;
    Contenders fused_kernels = device_contenders(stream_, "conv1's forward", times);
    for (int positions : {1, 2})
      for (int group : {kConvPoolChannelGroup, plan.out_c}) {
        if (!conv_pool_positions_supported(shape_.convs[k].kernel, positions)) continue;
        if (group == kConvPoolChannelGroup && group >= plan.out_c) continue;  // the same plan
        ConvPoolPlan v = plan.with_channel_group(group);
        v.positions = positions;
        DeviceScratch scratch(resource_, stream_);
        const float ms = time_conv_pool(v, t, scratch, fused_kernels);
        if (ms >= 0 && (fused_ms < 0 || ms < fused_ms)) fastest = v, fused_ms = ms;
      }
    fused_kernels.require_one_ran(options_.cuda_conv1_forward_route == "fused");
    record["forward_ms"] = times;
  }
  const std::string route = fastest_route({{"cudnn", cudnn_ms}, {"fused", fused_ms}},
                                          options_.cuda_conv1_forward_route, "conv1's forward");
  record["forward_route"] = route;
  if (route != "fused") return;
  c.conv_pool = fastest;
  c.workspace.forward = 0;
  record["forward"] = conv_pool_name(fastest);
  record["forward_workspace"] = 0;
  record["bias_relu"] = "in the fused conv + pool kernel";
}

}  // namespace histocnn::cuda
