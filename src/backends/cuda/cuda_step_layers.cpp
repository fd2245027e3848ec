// The CUDA step's layers: cuDNN descriptors checked against the schedule, and
// each conv block's algorithms chosen under the workspace budget.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "backends/cuda/device_timing.h"
#include "core/error.h"

namespace histocnn::cuda {

void CudaTrainingStep::build_layers() {
  const bool tf32 = options_.precision == "tf32";
  // bf16: maps and weights in bf16, products summed in fp32 on tensor cores
  // (PyTorch's autocast convolutions).
  const cudnnDataType_t map_type = bf16_ ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  HISTOCNN_CUDA(
      cudnnSetActivationDescriptor(relu_, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0));
  // Dims and layouts before the workspaces are known.
  const CudaSchedule plain = build_cuda_schedule(shape_, {}, format());
  auto format_of = [](bool channels_last) {
    return channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  };
  const cudnnTensorFormat_t maps = format_of(channels_last_);
  convs_.resize(shape_.convs.size());
  for (size_t k = 0; k < shape_.convs.size(); ++k) {
    const ConvShape& s = shape_.convs[k];
    const auto& t = plain.convs[k];
    ConvLayer& c = convs_[k];
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.x, maps, map_type, t.x.n, t.x.c, t.x.h, t.x.w));
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.y, maps, map_type, t.y.n, t.y.c, t.y.h, t.y.w));
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.pooled, format_of(t.pooled_channels_last), map_type,
                                             t.pooled_dims.n, t.pooled_dims.c, t.pooled_dims.h,
                                             t.pooled_dims.w));
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.bias, maps, CUDNN_DATA_FLOAT, 1, s.out_c, 1, 1));
    // PyTorch's OIHW is cuDNN's KCRS; channels last, the KRSC filters.
    HISTOCNN_CUDA(
        cudnnSetFilter4dDescriptor(c.w, map_type, maps, s.out_c, s.in_c, s.kernel, s.kernel));
    HISTOCNN_CUDA(cudnnSetConvolution2dDescriptor(c.conv, s.pad, s.pad, 1, 1, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // fp32: plain FMA math (no TF32), for parity with the CPU backend.
    HISTOCNN_CUDA(
        cudnnSetConvolutionMathType(c.conv, tf32 || bf16_ ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    int n = 0, ch = 0, h = 0, w = 0;
    HISTOCNN_CUDA(cudnnGetConvolution2dForwardOutputDim(c.conv, c.x, c.w, &n, &ch, &h, &w));
    require(n == t.y.n && ch == t.y.c && h == t.y.h && w == t.y.w,
            "cuDNN's convolution output shape disagrees with the schedule (conv" +
                std::to_string(k + 1) + ")");
    const std::string tag = "conv" + std::to_string(k + 1);
    c.w_offset = layout_params_.info(tag + ".weight").offset;
    c.batch_norm = s.batch_norm;
    if (!c.batch_norm) {
      c.b_offset = layout_params_.info(tag + ".bias").offset;
    } else {
      const std::string bn = "bn" + std::to_string(k + 1);
      c.gamma_offset = layout_params_.info(bn + ".weight").offset;
      c.beta_offset = layout_params_.info(bn + ".bias").offset;
      // bf16 and channels last run batch norm as our kernels (bn_kernels.h).
      if (!batch_norm_is_ours())
        HISTOCNN_CUDA(cudnnDeriveBNTensorDescriptor(c.bn, c.y, CUDNN_BATCHNORM_SPATIAL));
    }
    choose_algorithms(c, k);
  }
  const Dims4& features = plain.convs.back().pooled_dims;
  HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(features_desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                           features.n, features.c, features.h, features.w));
  if (shape_.global_pool) {
    const auto& last = plain.convs.back().pooled_dims;
    HISTOCNN_CUDA(
        cudnnSetPooling2dDescriptor(gap_pool_, CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING,
                                    CUDNN_NOT_PROPAGATE_NAN, last.h, last.w, 0, 0, last.h, last.w));
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(gap_desc_, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, last.n,
                                             last.c, 1, 1));
  }
  for (size_t j = 0; j < shape_.denses.size(); ++j) {
    const std::string tag = "fc" + std::to_string(j + 1);
    denses_.push_back(
        {layout_params_.info(tag + ".weight").offset, layout_params_.info(tag + ".bias").offset});
  }
}

// Every algorithm cuDNN offers for the layer's three directions: timed on
// scratch buffers from the resource (--cudnn-benchmark; freed after), or
// ranked by its heuristics.
CudaTrainingStep::ConvCandidates CudaTrainingStep::timed_candidates(const ConvLayer& c, size_t k) {
  cudnnHandle_t h = context_->cudnn;
  const size_t limit = options_.device.workspace_limit;
  constexpr int kMax = 16;
  int returned = 0;
  ConvCandidates found;
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const size_t xb = size_t(t.x.count()) * 4, yb = size_t(t.y.count()) * 4;
  const ConvShape& s = shape_.convs[k];
  const size_t wb = size_t(s.out_c) * s.in_c * s.kernel * s.kernel * 4;
  void* x = resource_->allocate(xb, stream_);
  void* y = resource_->allocate(yb, stream_);
  void* w = resource_->allocate(wb, stream_);
  void* ws = resource_->allocate(limit, stream_);
  cudnnConvolutionFwdAlgoPerf_t pf[kMax];
  cudnnConvolutionBwdDataAlgoPerf_t pd[kMax];
  cudnnConvolutionBwdFilterAlgoPerf_t pw[kMax];
  HISTOCNN_CUDA(cudnnSetStream(h, stream_));
  HISTOCNN_CUDA(cudnnFindConvolutionForwardAlgorithmEx(h, c.x, x, c.w, w, c.conv, c.y, y, kMax,
                                                       &returned, pf, ws, limit));
  found.forward = candidates(pf, returned, true);
  HISTOCNN_CUDA(cudnnFindConvolutionBackwardDataAlgorithmEx(h, c.w, w, c.y, y, c.conv, c.x, x, kMax,
                                                            &returned, pd, ws, limit));
  found.backward_data = candidates(pd, returned, true);
  HISTOCNN_CUDA(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, c.x, x, c.y, y, c.conv, c.w, w,
                                                              kMax, &returned, pw, ws, limit));
  found.backward_filter = candidates(pw, returned, true);
  sync();
  resource_->deallocate(ws, limit, stream_);
  resource_->deallocate(w, wb, stream_);
  resource_->deallocate(y, yb, stream_);
  resource_->deallocate(x, xb, stream_);
  return found;
}

CudaTrainingStep::ConvCandidates CudaTrainingStep::heuristic_candidates(const ConvLayer& c) {
  cudnnHandle_t h = context_->cudnn;
  constexpr int kMax = 16;
  int returned = 0;
  ConvCandidates found;
  cudnnConvolutionFwdAlgoPerf_t pf[kMax];
  cudnnConvolutionBwdDataAlgoPerf_t pd[kMax];
  cudnnConvolutionBwdFilterAlgoPerf_t pw[kMax];
  HISTOCNN_CUDA(
      cudnnGetConvolutionForwardAlgorithm_v7(h, c.x, c.w, c.conv, c.y, kMax, &returned, pf));
  found.forward = candidates(pf, returned, false);
  HISTOCNN_CUDA(
      cudnnGetConvolutionBackwardDataAlgorithm_v7(h, c.w, c.y, c.conv, c.x, kMax, &returned, pd));
  found.backward_data = candidates(pd, returned, false);
  HISTOCNN_CUDA(
      cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, c.x, c.y, c.conv, c.w, kMax, &returned, pw));
  found.backward_filter = candidates(pw, returned, false);
  return found;
}

void CudaTrainingStep::choose_algorithms(ConvLayer& c, size_t k) {
  cudnnHandle_t h = context_->cudnn;
  const size_t limit = options_.device.workspace_limit;
  // Backward algorithms must be deterministic: identical weights across runs
  // and allocators (the self-test checks it).
  const ConvCandidates found =
      options_.cudnn_benchmark ? timed_candidates(c, k) : heuristic_candidates(c);
  const int f = choose_algorithm(found.forward, limit, true),
            d = choose_algorithm(found.backward_data, limit, true),
            w = choose_algorithm(found.backward_filter, limit, true);
  const std::string tag = "conv" + std::to_string(k + 1);
  // Our direct kernel takes a weight gradient cuDNN has no deterministic
  // algorithm for (in this precision and layout) where it applies.
  const SmallWgradPlan own = small_wgrad_plan(k);
  require(f >= 0 && (w >= 0 || own.applies) && (k == 0 || d >= 0),
          tag + ": cuDNN offers no deterministic " +
              std::string(f < 0   ? "forward"
                          : w < 0 ? "weight-gradient"
                                  : "data-gradient") +
              " algorithm in " + options_.precision + " within the workspace limit of " +
              std::to_string(limit >> 20) + " MB" +
              (bf16_ ? " (this cuDNN or GPU may not support bf16 convolutions: try tf32)" : "") +
              (channels_last_ ? " (channels last: try without --channels-last)" : ""));
  c.fwd = cudnnConvolutionFwdAlgo_t(f);
  if (w >= 0) c.bwd_filter = cudnnConvolutionBwdFilterAlgo_t(w);
  if (d >= 0) c.bwd_data = cudnnConvolutionBwdDataAlgo_t(d);
  HISTOCNN_CUDA(cudnnGetConvolutionForwardWorkspaceSize(h, c.x, c.w, c.conv, c.y, c.fwd,
                                                        &c.workspace.forward));
  if (w >= 0)
    HISTOCNN_CUDA(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        h, c.x, c.y, c.conv, c.w, c.bwd_filter, &c.workspace.backward_filter));
  if (k > 0)
    HISTOCNN_CUDA(cudnnGetConvolutionBackwardDataWorkspaceSize(h, c.w, c.y, c.conv, c.x, c.bwd_data,
                                                               &c.workspace.backward_data));
  choose_bias_relu(c, k);
  nlohmann::json j = algorithm_record(c, k, f, d, w);
  choose_weight_gradient(c, k, own, w >= 0, j);
  choose_later_gradients(c, k, w >= 0, j);
  choose_forward(c, k, j);
  if (options_.cudnn_graph) choose_graphs(c, k, j);
  details_["algorithms"].push_back(j);
}

// A pooled block gets its bias and ReLU in our pool kernel (after the max:
// 4x fewer elements, no pass over the conv output); otherwise cuDNN fuses
// them into the convolution only with this algorithm. A batch-norm block
// has neither: they follow the normalisation.
void CudaTrainingStep::choose_bias_relu(ConvLayer& c, size_t k) const {
  c.bias_relu_in_pool = !c.batch_norm && shape_.convs[k].pool > 1;
  // bf16: our bias_relu kernel (cuDNN's fusion and cudnnAddTensor want the
  // bias in the maps' type).
  c.fused = !bf16_ && !c.batch_norm && !c.bias_relu_in_pool &&
            c.fwd == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
}

// What metrics.json records of the layer's choices (forward f, data
// gradient d, weight gradient w).
nlohmann::json CudaTrainingStep::algorithm_record(const ConvLayer& c, size_t k, int f, int d,
                                                  int w) const {
  nlohmann::json j = {{"layer", "conv" + std::to_string(k + 1)},
                      {"layout", channels_last_ ? "channels last (NHWC)" : "channels first (NCHW)"},
                      {"forward", fwd_name(f)},
                      {"forward_workspace", c.workspace.forward},
                      {"bias_relu", c.batch_norm          ? "after batch norm"
                                    : c.bias_relu_in_pool ? "in the pool kernel"
                                    : c.fused             ? "fused by cuDNN"
                                    : bf16_               ? "our bias_relu kernel"
                                                          : "separate cuDNN calls"},
                      {"backward_filter", bwd_filter_name(w)},
                      {"backward_filter_workspace", c.workspace.backward_filter},
                      {"chosen_by", options_.cudnn_benchmark ? "timed search" : "heuristics"}};
  if (k > 0) {
    j["backward_data"] = bwd_data_name(d);
    j["backward_data_workspace"] = c.workspace.backward_data;
  }
  return j;
}

namespace {

// Our kernel that took direction `d` of the block, by the name metrics.json
// gives it.
std::string own_kernel_name(const ConvLayer& c, ConvDirection d) {
  if (d == ConvDirection::kForward) return conv_pool_name(c.conv_pool);
  if (d == ConvDirection::kBackwardData) return pooled_dgrad_name(c.pooled_dgrad.tile_windows);
  return c.small_wgrad.applies ? small_wgrad_name(c.small_wgrad)
                               : pooled_wgrad_name(c.pooled_wgrad.outs_per_warp);
}

}  // namespace

// --cudnn-graph: each direction of this layer through cuDNN's graph API where
// it offers an engine our rules allow (cudnn_graph_rules.h); the legacy
// choice above stays as the fallback. The record says which API each
// direction took, its engine, or why not.
void CudaTrainingStep::choose_graphs(ConvLayer& c, size_t k, nlohmann::json& record) {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  // Weights and weight gradients sit at offsets of 256-byte-aligned blocks:
  // the parameters (or their bf16 copy), then the gradients after them;
  // channels last, the KRSC filters and their gradients, each a block of its
  // own, so a filter's gradient sits at the filter's offset.
  const uint64_t element = bf16_ ? 2 : 4;
  const uint64_t weights = uint64_t(channels_last_ ? c.filter_offset : c.w_offset);
  const uint64_t gradients = channels_last_ ? weights : weights + uint64_t(parameter_count_);
  GraphConvShape g{t.x,
                   t.y,
                   s.kernel,
                   s.pad,
                   options_.precision,
                   byte_alignment(element * weights),
                   byte_alignment(element * gradients),
                   channels_last_};
  GraphConv::Timer timer;
  if (options_.cudnn_benchmark)
    timer = [this, k](const GraphConv::Run& run) { return time_on_scratch(run, k); };
  const size_t limit = options_.device.workspace_limit;
  const OwnDirections own{c.conv_pool.applies, c.pooled_dgrad.applies,
                          c.small_wgrad.applies || c.pooled_wgrad.applies};
  for (ConvDirection d :
       {ConvDirection::kForward, ConvDirection::kBackwardData, ConvDirection::kBackwardFilter}) {
    const char* name = direction_name(d);
    const std::string not_wanted = graph_not_wanted(d, k == 0, own);
    if (not_wanted == "no data gradient") continue;
    if (!not_wanted.empty()) {
      record["graph"][name] = own_kernel_name(c, d) + " kept (faster than cuDNN's algorithms)";
      continue;
    }
    auto graph = std::make_unique<GraphConv>(context_->cudnn, g, d, limit, timer);
    if (!graph->available()) {
      record["graph"][name] = "legacy API: " + graph->why_not();
      continue;
    }
    record["graph"][name] = {{"engine", graph->engine()},
                             {"workspace", graph->workspace()},
                             {"allowed_engines", graph->candidates()}};
    if (d == ConvDirection::kForward) {
      c.workspace.forward = graph->workspace();
      if (c.fused) record["bias_relu"] = "separate cuDNN calls";
      c.fused = false;  // the legacy fused call is not this engine
    } else if (d == ConvDirection::kBackwardData) {
      c.workspace.backward_data = graph->workspace();
    } else {
      c.workspace.backward_filter = graph->workspace();
    }
    c.graph[size_t(d)] = std::move(graph);
  }
}

// The device milliseconds of `run` on scratch buffers for conv block k (its
// input, output and weights, and a workspace of the limit): one warm-up,
// then the mean of three. The buffers are freed after.
float CudaTrainingStep::time_on_scratch(const GraphConv::Run& run, size_t k) {
  const CudaSchedule::ConvTensors t = conv_tensors(k);
  const ConvShape& s = shape_.convs[k];
  const size_t element = bf16_ ? 2 : 4, limit = options_.device.workspace_limit;
  // Anything that fails here (the scratch does not fit a --gpu-mem-limit, the
  // engine does not run) only rules this engine out.
  try {
    DeviceScratch scratch(resource_, stream_);
    void* x = scratch.take(std::max<size_t>(size_t(t.x.count()) * element, 1));
    void* y = scratch.take(std::max<size_t>(size_t(t.y.count()) * element, 1));
    void* w = scratch.take(size_t(s.out_c) * s.in_c * s.kernel * s.kernel * element);
    void* ws = scratch.take(std::max<size_t>(limit, 1), false);
    HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
    const std::array<void*, 4> by_tensor = {x, w, y, ws};
    return mean_device_ms(stream_, [&] { run(by_tensor); });
  } catch (...) {
    return -1;  // negative: it did not run
  }
}

}  // namespace histocnn::cuda
