// The CUDA step's dispatcher: each schedule operation as cuDNN, cuBLAS or our
// kernels, and the loop that runs them through StepMemory.
#include <algorithm>
#include <cstring>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "core/error.h"

namespace histocnn::cuda {

void CudaTrainingStep::gemm(const GemmCall& g, const float* a, const float* b, float* c) {
  HISTOCNN_CUDA(cublasSgemm(context_->cublas, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                            g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.m, g.n, g.k, &kOne, a, g.lda,
                            b, g.ldb, &kZero, c, g.ldc));
}

void CudaTrainingStep::run_op(const ScheduledOp& op, Mode mode, bool training, int slot) {
  cudnnHandle_t h = context_->cudnn;
  const int n = shape_.batch;
  auto* step = reinterpret_cast<int64_t*>(persistent(layout_.step));
  switch (op.kind) {
    case OpKind::kInput:
      return run_input();
    case OpKind::kConvForward:
      return run_conv_forward(op);
    case OpKind::kConvPoolForward:
      return run_conv_pool_forward(op);
    case OpKind::kPoolForward: {  // ours: it records each maximum's position
      const ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      const float* bias = c.bias_relu_in_pool ? params() + c.b_offset : nullptr;
      if (bf16_)
        launch_max_pool_forward(bf16_tensor(t.act), bias, bf16_tensor(t.pooled), bytes(t.argmax),
                                t.pool_maps(), stream_);
      else
        launch_max_pool_forward(tensor(t.act), bias, tensor(t.pooled), bytes(t.argmax),
                                t.pool_maps(), stream_);
      return;
    }
    case OpKind::kToFloat: {
      launch_to_float(bf16_tensor(schedule_.convs.back().pooled), tensor(schedule_.features),
                      schedule_.convs.back().pooled_dims.count(), stream_);
      return;
    }
    case OpKind::kToBf16: {
      launch_to_bf16(tensor(schedule_.d_features), bf16_tensor(schedule_.convs.back().d_pooled),
                     schedule_.convs.back().pooled_dims.count(), stream_);
      return;
    }
    case OpKind::kBatchNormForward:
      return run_batch_norm_forward(op, mode != Mode::kPredict && training);
    case OpKind::kBatchNormBackward:
      return run_batch_norm_backward(op);
    case OpKind::kGlobalPoolForward: {
      HISTOCNN_CUDA(cudnnPoolingForward(h, gap_pool_, &kOne, features_desc_,
                                        tensor(schedule_.features), &kZero, gap_desc_,
                                        tensor(schedule_.gap_out)));
      return;
    }
    case OpKind::kGlobalPoolBackward: {
      HISTOCNN_CUDA(cudnnPoolingBackward(h, gap_pool_, &kOne, gap_desc_, tensor(schedule_.gap_out),
                                         gap_desc_, tensor(schedule_.d_gap), features_desc_,
                                         tensor(schedule_.features), &kZero, features_desc_,
                                         tensor(schedule_.d_features)));
      return;
    }
    case OpKind::kDenseForward: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      gemm(dense_forward_gemm(n, d.in, d.outputs), params() + denses_[size_t(op.layer)].w_offset,
           tensor(d.src), tensor(d.out));
      return;
    }
    case OpKind::kDenseActivation: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      const DenseShape& s = shape_.denses[size_t(op.layer)];
      launch_dense_activation(tensor(d.out), params() + denses_[size_t(op.layer)].b_offset, n,
                              d.outputs, s.relu, training ? s.dropout_after : 0.0f,
                              options_.dropout_seed, step, meta(), op.layer, stream_);
      return;
    }
    case OpKind::kLoss:
      return run_loss(mode, slot);
    case OpKind::kDenseActivationBackward: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      const DenseShape& s = shape_.denses[size_t(op.layer)];
      launch_dense_activation_backward(tensor(d.d_out), tensor(d.out), n, d.outputs,
                                       training ? s.dropout_after : 0.0f, options_.dropout_seed,
                                       step, meta(), op.layer, stream_);
      return;
    }
    case OpKind::kDenseBackwardWeights:
      return run_dense_backward_weights(op);
    case OpKind::kDenseBackwardData: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      gemm(dense_backward_data_gemm(n, d.in, d.outputs),
           params() + denses_[size_t(op.layer)].w_offset, tensor(d.d_out), tensor(d.d_src));
      return;
    }
    case OpKind::kPoolReluBackward:
      return run_pool_relu_backward(op);
    case OpKind::kConvBackwardFilter:
      return run_conv_backward_filter(op);
    case OpKind::kConvBackwardData:
      return run_conv_backward_data(op);
  }
}

// The batch into the step's input, from the landing buffer its images
// crossed to (send(), on the copy stream): copied (fp32) or expanded (bytes
// and tables); and what conv1 reads made from it: its bf16 copy, or its
// channels-last copy (fp32 or bf16).
void CudaTrainingStep::run_input() {
  const int n = shape_.batch;
  Stage& s = stages_[stage_];
  HISTOCNN_CUDA(cudaStreamWaitEvent(stream_, s.sent, 0));
  const LandingLayout landing = landing_layout(shape_);
  if (s.byte_images) {
    const char* bytes = persistent(layout_.landing);
    launch_expand_byte_images(reinterpret_cast<const uint8_t*>(bytes),
                              reinterpret_cast<const float*>(bytes + landing.tables_offset),
                              tensor(schedule_.input), s.count, n,
                              int64_t(shape_.height) * shape_.width, stream_);
  } else {
    HISTOCNN_CUDA(cudaMemcpyAsync(tensor(schedule_.input), persistent(layout_.landing),
                                  landing.float_bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  HISTOCNN_CUDA(cudaEventRecord(landing_read_, stream_));
  HISTOCNN_CUDA(cudaMemcpyAsync(persistent(layout_.labels), s.labels, sizeof(int32_t) * size_t(n),
                                cudaMemcpyHostToDevice, stream_));
  HISTOCNN_CUDA(
      cudaMemcpyAsync(meta(), s.meta, sizeof(BatchMeta), cudaMemcpyHostToDevice, stream_));
  HISTOCNN_CUDA(cudaEventRecord(s.copied, stream_));
  if (channels_last_) {
    const Dims4& x = schedule_.convs.front().x;
    if (bf16_)
      launch_relayout(tensor(schedule_.input), bf16_tensor(schedule_.conv_input), x.n,
                      x.layout(true), stream_);
    else
      launch_relayout(tensor(schedule_.input), tensor(schedule_.conv_input), x.n, x.layout(true),
                      stream_);
  } else if (bf16_) {
    launch_to_bf16(tensor(schedule_.input), bf16_tensor(schedule_.conv_input),
                   int64_t(schedule_.tensors[size_t(schedule_.input)].bytes / 4), stream_);
  }
}

void CudaTrainingStep::run_conv_forward(const ScheduledOp& op) {
  cudnnHandle_t h = context_->cudnn;
  ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  void* ws = t.ws_forward >= 0 ? tensor(t.ws_forward) : nullptr;
  const void* w = conv_weights(c);
  if (c.fused) {
    const cudnnStatus_t status = cudnnConvolutionBiasActivationForward(
        h, &kOne, c.x, tensor(t.src), c.w, w, c.conv, c.fwd, ws, c.workspace.forward, &kZero, c.y,
        tensor(t.conv_out), c.bias, params() + c.b_offset, relu_, c.y, tensor(t.conv_out));
    if (status != CUDNN_STATUS_NOT_SUPPORTED) {
      HISTOCNN_CUDA(status);
      return;
    }
    // This cuDNN refuses the fusion for these shapes: separate calls from
    // now on (nothing was launched).
    c.fused = false;
    details_["algorithms"][size_t(op.layer)]["bias_relu"] =
        "separate cuDNN calls (fusion not supported)";
  }
  // Batch norm: bias-free, normalisation and ReLU follow. Pooled blocks:
  // the pool kernel adds the bias and applies the ReLU.
  if (GraphConv* g = c.graph_for(ConvDirection::kForward))
    g->execute(h, tensor(t.src), w, tensor(t.conv_out), ws);
  else
    HISTOCNN_CUDA(cudnnConvolutionForward(h, &kOne, c.x, tensor(t.src), c.w, w, c.conv, c.fwd, ws,
                                          c.workspace.forward, &kZero, c.y, tensor(t.conv_out)));
  if (c.batch_norm || c.bias_relu_in_pool) return;
  if (bf16_) {
    launch_bias_relu(bf16_tensor(t.conv_out), params() + c.b_offset, t.y.n,
                     t.y.layout(t.channels_last), stream_);
    return;
  }
  HISTOCNN_CUDA(
      cudnnAddTensor(h, &kOne, c.bias, params() + c.b_offset, &kOne, c.y, tensor(t.conv_out)));
  HISTOCNN_CUDA(cudnnActivationForward(h, relu_, &kOne, c.y, tensor(t.conv_out), &kZero, c.y,
                                       tensor(t.conv_out)));
}

// conv1 by our fused kernel: the pooled map and argmax straight from the
// input, from the fp32 master weights and bias whatever the maps' type.
void CudaTrainingStep::run_conv_pool_forward(const ScheduledOp& op) {
  const ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  const ConvShape& s = shape_.convs[size_t(op.layer)];
  const float *w = params() + c.w_offset, *bias = params() + c.b_offset;
  if (bf16_)
    launch_conv_pool_forward(bf16_tensor(t.src), w, bias, bf16_tensor(t.pooled), bytes(t.argmax),
                             t.x, t.y, s.kernel, s.pad, c.conv_pool, stream_);
  else
    launch_conv_pool_forward(tensor(t.src), w, bias, tensor(t.pooled), bytes(t.argmax), t.x, t.y,
                             s.kernel, s.pad, c.conv_pool, stream_);
}

// training: the batch's statistics (not when predicting); else the running ones.
void CudaTrainingStep::run_batch_norm_forward(const ScheduledOp& op, bool training) {
  cudnnHandle_t h = context_->cudnn;
  ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  auto at = [&](size_t offset) { return reinterpret_cast<float*>(persistent(offset)); };
  if (batch_norm_is_ours()) {
    batch_norm_forward_ours(c, t, training);
    return;
  }
  if (training) {
    // The batch's statistics; running ones updated as PyTorch's (momentum
    // 0.1, unbiased variance); mean and 1/std saved for backward.
    HISTOCNN_CUDA(cudnnBatchNormalizationForwardTraining(
        h, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, c.y, tensor(t.conv_out), c.y, tensor(t.bn_out),
        c.bn, params() + c.gamma_offset, params() + c.beta_offset, double(kBatchNormMomentum),
        at(c.running_mean), at(c.running_var), double(kBatchNormEpsilon), at(c.saved_mean),
        at(c.saved_inv_std)));
  } else {
    HISTOCNN_CUDA(cudnnBatchNormalizationForwardInference(
        h, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, c.y, tensor(t.conv_out), c.y, tensor(t.bn_out),
        c.bn, params() + c.gamma_offset, params() + c.beta_offset, at(c.running_mean),
        at(c.running_var), double(kBatchNormEpsilon)));
  }
  HISTOCNN_CUDA(cudnnActivationForward(h, relu_, &kOne, c.y, tensor(t.bn_out), &kZero, c.y,
                                       tensor(t.bn_out)));
}

void CudaTrainingStep::run_batch_norm_backward(const ScheduledOp& op) {
  cudnnHandle_t h = context_->cudnn;
  ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  auto at = [&](size_t offset) { return reinterpret_cast<float*>(persistent(offset)); };
  if (batch_norm_is_ours()) {
    batch_norm_backward_ours(c, t);
    return;
  }
  HISTOCNN_CUDA(cudnnBatchNormalizationBackward(
      h, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, &kOne, &kZero, c.y, tensor(t.conv_out), c.y,
      tensor(t.d_act), c.y, tensor(t.d_conv_out), c.bn, params() + c.gamma_offset,
      grads() + c.gamma_offset, grads() + c.beta_offset, double(kBatchNormEpsilon),
      at(c.saved_mean), at(c.saved_inv_std)));
}

void CudaTrainingStep::run_loss(Mode mode, int slot) {
  const int n = shape_.batch;
  const bool predict = mode == Mode::kPredict;
  launch_softmax_xent(tensor(schedule_.logits), predict ? nullptr : tensor(schedule_.d_logits),
                      reinterpret_cast<float*>(persistent(layout_.probs)),
                      predict ? nullptr : reinterpret_cast<int32_t*>(persistent(layout_.labels)),
                      meta(), n, shape_.classes(), !predict, options_.label_smoothing,
                      reinterpret_cast<double*>(persistent(layout_.loss)) + slot,
                      reinterpret_cast<int*>(persistent(layout_.correct)) + slot, stream_);
}

void CudaTrainingStep::run_dense_backward_weights(const ScheduledOp& op) {
  const int n = shape_.batch;
  const auto& d = schedule_.denses[size_t(op.layer)];
  const DenseLayer& l = denses_[size_t(op.layer)];
  gemm(dense_backward_weight_gemm(n, d.in, d.outputs), tensor(d.src), tensor(d.d_out),
       grads() + l.w_offset);
  // db[o] = sum over rows of dY: dY^T[out, N] times ones[N].
  HISTOCNN_CUDA(cublasSgemv(context_->cublas, CUBLAS_OP_N, d.outputs, n, &kOne, tensor(d.d_out),
                            d.outputs, reinterpret_cast<float*>(persistent(layout_.ones)), 1,
                            &kZero, grads() + l.b_offset, 1));
}

// ReLU', the max-pool scatter and the bias gradient in one pass (our
// kernels: cuDNN's pooling and bias backward were half the step).
void CudaTrainingStep::run_pool_relu_backward(const ScheduledOp& op) {
  ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  float* sums = t.bias_partials >= 0 ? tensor(t.bias_partials) : nullptr;
  // With a pool the argmax bytes carry ReLU'; without one the ReLU's output
  // does (the schedule keeps it alive only then).
  const uint8_t* argmax = t.pool > 1 ? bytes(t.argmax) : nullptr;
  const int relu_out = t.pool > 1 ? -1 : t.pooled;
  const PoolMaps maps = t.pool_maps();
  // (Not scheduled for conv1 from the pooled gradient: its weight-gradient
  // kernel sums the bias gradient itself. No d_act where both gradients of
  // a later block come from the pooled gradient: the bias sums alone.)
  const bool d_act = t.d_act >= 0;
  if (bf16_)
    launch_pool_relu_backward(relu_out >= 0 ? bf16_tensor(relu_out) : nullptr,
                              bf16_tensor(t.d_pooled), argmax,
                              d_act ? bf16_tensor(t.d_act) : nullptr, sums, maps, stream_);
  else
    launch_pool_relu_backward(relu_out >= 0 ? tensor(relu_out) : nullptr, tensor(t.d_pooled),
                              argmax, d_act ? tensor(t.d_act) : nullptr, sums, maps, stream_);
  if (sums) launch_column_sums(sums, bias_partial_rows(maps), t.y.c, grads() + c.b_offset, stream_);
}

void CudaTrainingStep::run_conv_backward_filter(const ScheduledOp& op) {
  cudnnHandle_t h = context_->cudnn;
  ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  void* ws = t.ws_backward_filter >= 0 ? tensor(t.ws_backward_filter) : nullptr;
  const ConvShape& s = shape_.convs[size_t(op.layer)];
  if (c.pooled_wgrad.applies) {  // later blocks from the pooled gradient: dW in fp32, OIHW
    const uint8_t* argmax = bytes(t.argmax);
    if (bf16_)
      launch_pooled_wgrad(bf16_tensor(t.src), bf16_tensor(t.d_pooled), argmax, grads() + c.w_offset,
                          static_cast<float*>(ws), t.x, t.y, t.pooled_channels_last, c.pooled_wgrad,
                          stream_);
    else
      launch_pooled_wgrad(tensor(t.src), tensor(t.d_pooled), argmax, grads() + c.w_offset,
                          static_cast<float*>(ws), t.x, t.y, t.pooled_channels_last, c.pooled_wgrad,
                          stream_);
    return;
  }
  if (t.routes.pooled_weight_gradient) {  // from the pooled gradient (c.small_wgrad.pool > 1)
    const uint8_t* argmax = bytes(t.argmax);
    if (bf16_)
      launch_small_wgrad_pooled(bf16_tensor(t.src), bf16_tensor(t.d_pooled), argmax,
                                grads() + c.w_offset, grads() + c.b_offset, static_cast<float*>(ws),
                                t.x, t.y, t.pooled_channels_last, s.kernel, s.pad, c.small_wgrad,
                                stream_);
    else
      launch_small_wgrad_pooled(tensor(t.src), tensor(t.d_pooled), argmax, grads() + c.w_offset,
                                grads() + c.b_offset, static_cast<float*>(ws), t.x, t.y,
                                t.pooled_channels_last, s.kernel, s.pad, c.small_wgrad, stream_);
    return;
  }
  if (c.small_wgrad.applies) {  // fp32 sums and gradient, whatever the maps' type
    if (bf16_)
      launch_small_wgrad(bf16_tensor(t.src), bf16_tensor(t.d_conv_out), grads() + c.w_offset,
                         static_cast<float*>(ws), t.x, t.y, s.kernel, s.pad, c.small_wgrad,
                         stream_);
    else
      launch_small_wgrad(tensor(t.src), tensor(t.d_conv_out), grads() + c.w_offset,
                         static_cast<float*>(ws), t.x, t.y, s.kernel, s.pad, c.small_wgrad,
                         stream_);
    return;
  }
  // bf16: cuDNN writes the gradient in bf16 (as autocast's convolutions
  // do), widened into the fp32 gradients Adam reads. Channels last: it
  // writes KRSC filters' gradients, turned into the KCRS ones.
  void* dw = channels_last_ ? filters(c, true)
             : bf16_        ? static_cast<void*>(grad_shadow() + c.w_offset)
                            : grads() + c.w_offset;
  if (GraphConv* g = c.graph_for(ConvDirection::kBackwardFilter))
    g->execute(h, tensor(t.src), tensor(t.d_conv_out), dw, ws);
  else
    HISTOCNN_CUDA(cudnnConvolutionBackwardFilter(h, &kOne, c.x, tensor(t.src), c.y,
                                                 tensor(t.d_conv_out), c.conv, c.bwd_filter, ws,
                                                 c.workspace.backward_filter, &kZero, c.w, dw));
  const MapLayout kcrs{s.in_c, s.kernel, s.kernel, false};
  if (channels_last_ && bf16_)
    launch_relayout(static_cast<const Bf16*>(dw), grads() + c.w_offset, s.out_c, kcrs, stream_);
  else if (channels_last_)
    launch_relayout(static_cast<const float*>(dw), grads() + c.w_offset, s.out_c, kcrs, stream_);
  else if (bf16_)
    launch_to_float(grad_shadow() + c.w_offset, grads() + c.w_offset,
                    int64_t(s.out_c) * s.in_c * s.kernel * s.kernel, stream_);
}

void CudaTrainingStep::run_conv_backward_data(const ScheduledOp& op) {
  cudnnHandle_t h = context_->cudnn;
  ConvLayer& c = convs_[size_t(op.layer)];
  const auto& t = schedule_.convs[size_t(op.layer)];
  const auto& prev = schedule_.convs[size_t(op.layer) - 1];
  if (c.pooled_dgrad.applies) {  // from the pooled gradient: no d_conv_out, no workspace
    const uint8_t* argmax = bytes(t.argmax);
    if (bf16_)
      launch_pooled_dgrad(bf16_tensor(t.d_pooled), argmax,
                          static_cast<const Bf16*>(conv_weights(c)), bf16_tensor(prev.d_pooled),
                          t.x, t.y, t.pooled_channels_last, c.pooled_dgrad, stream_);
    else
      launch_pooled_dgrad(tensor(t.d_pooled), argmax, static_cast<const float*>(conv_weights(c)),
                          tensor(prev.d_pooled), t.x, t.y, t.pooled_channels_last, c.pooled_dgrad,
                          stream_);
    return;
  }
  void* ws = t.ws_backward_data >= 0 ? tensor(t.ws_backward_data) : nullptr;
  if (GraphConv* g = c.graph_for(ConvDirection::kBackwardData))
    g->execute(h, conv_weights(c), tensor(t.d_conv_out), tensor(prev.d_pooled), ws);
  else
    HISTOCNN_CUDA(cudnnConvolutionBackwardData(
        h, &kOne, c.w, conv_weights(c), c.y, tensor(t.d_conv_out), c.conv, c.bwd_data, ws,
        c.workspace.backward_data, &kZero, c.x, tensor(prev.d_pooled)));
}

// Batch norm as our kernels (bn_kernels.h) over maps of type T: two passes
// for the statistics (into the saved mean / inverse deviation), then
// normalise and ReLU into y.
struct CudaTrainingStep::OwnBatchNorm {
  float *partials, *mean, *inv_std, *running_mean, *running_var;
  const float *gamma, *beta;
  int n;
  MapLayout layout;
  Stream stream;
  int rows() const { return channel_sum_rows(n, layout); }
  int64_t count() const { return int64_t(n) * layout.h * layout.w; }

  template <typename T>
  void forward(const T* x, T* y, bool training) const {
    const int channels = layout.c;
    if (training) {
      launch_bn_channel_moments(x, nullptr, partials, n, layout, stream);
      launch_column_sums(partials, rows(), channels, mean, stream);
      launch_scale(mean, 1.0f / float(count()), channels, stream);
      launch_bn_channel_moments(x, mean, partials, n, layout, stream);
      launch_column_sums(partials, rows(), channels, inv_std, stream);  // squared deviations
      launch_scale(inv_std, 1.0f / float(count()), channels, stream);   // the biased variance
    }
    launch_bn_finalize(mean, inv_std, running_mean, running_var, training, count(),
                       kBatchNormMomentum, kBatchNormEpsilon, channels, stream);
    launch_bn_relu_forward(x, y, mean, inv_std, gamma, beta, n, layout, stream);
  }

  // dbeta and dgamma (partial sums, then over the rows) straight into the
  // gradients, then dx from them.
  template <typename T>
  void backward(const T* d, const T* x, T* dx, float* dgamma, float* dbeta) const {
    float* dx_hat_sums = partials + int64_t(rows()) * layout.c;
    launch_bn_backward_sums(d, x, mean, inv_std, partials, dx_hat_sums, n, layout, stream);
    launch_column_sums(partials, rows(), layout.c, dbeta, stream);
    launch_column_sums(dx_hat_sums, rows(), layout.c, dgamma, stream);
    launch_bn_backward_dx(d, x, dx, mean, inv_std, gamma, dgamma, dbeta, n, layout, stream);
  }
};

CudaTrainingStep::OwnBatchNorm CudaTrainingStep::own_batch_norm(
    const ConvLayer& c, const CudaSchedule::ConvTensors& t) const {
  auto at = [&](size_t offset) { return reinterpret_cast<float*>(persistent(offset)); };
  return {tensor(t.bn_partials),       at(c.saved_mean),
          at(c.saved_inv_std),         at(c.running_mean),
          at(c.running_var),           params() + c.gamma_offset,
          params() + c.beta_offset,    t.y.n,
          t.y.layout(t.channels_last), stream_};
}

// --precision bf16 or --channels-last: batch norm as our kernels.
void CudaTrainingStep::batch_norm_forward_ours(const ConvLayer& c,
                                               const CudaSchedule::ConvTensors& t, bool training) {
  const OwnBatchNorm bn = own_batch_norm(c, t);
  if (bf16_)
    bn.forward(bf16_tensor(t.conv_out), bf16_tensor(t.bn_out), training);
  else
    bn.forward(tensor(t.conv_out), tensor(t.bn_out), training);
}

void CudaTrainingStep::batch_norm_backward_ours(const ConvLayer& c,
                                                const CudaSchedule::ConvTensors& t) {
  const OwnBatchNorm bn = own_batch_norm(c, t);
  float *dgamma = grads() + c.gamma_offset, *dbeta = grads() + c.beta_offset;
  if (bf16_)
    bn.backward(bf16_tensor(t.d_act), bf16_tensor(t.conv_out), bf16_tensor(t.d_conv_out), dgamma,
                dbeta);
  else
    bn.backward(tensor(t.d_act), tensor(t.conv_out), tensor(t.d_conv_out), dgamma, dbeta);
}

void CudaTrainingStep::update() {
  launch_adam_prepare(reinterpret_cast<int64_t*>(persistent(layout_.step)),
                      reinterpret_cast<const float*>(persistent(layout_.learning_rate)),
                      options_.adam.beta1, options_.adam.beta2, options_.adam.epsilon,
                      options_.adam.weight_decay,
                      reinterpret_cast<elementwise::AdamStep*>(persistent(layout_.adam)), stream_);
  launch_adam(params(), grads(), moment1(), moment2(), parameter_count_,
              reinterpret_cast<const elementwise::AdamStep*>(persistent(layout_.adam)), stream_,
              bf16_ ? param_shadow() : nullptr);
  refresh_filters();
}

// --channels-last: the KRSC filters the convolutions read, made from the
// KCRS weights (their bf16 copy under bf16, so both round alike). A few
// thousand elements per layer; part of the update graph when captured.
void CudaTrainingStep::refresh_filters() {
  if (!channels_last_) return;
  for (size_t k = 0; k < convs_.size(); ++k) {
    const ConvLayer& c = convs_[k];
    const ConvShape& s = shape_.convs[k];
    const MapLayout krsc{s.in_c, s.kernel, s.kernel, true};
    if (bf16_)
      launch_relayout(param_shadow() + c.w_offset, static_cast<Bf16*>(filters(c)), s.out_c, krsc,
                      stream_);
    else
      launch_relayout(params() + c.w_offset, static_cast<float*>(filters(c)), s.out_c, krsc,
                      stream_);
  }
}

// Runs the schedule: every op in train/gradients mode; forward and loss in
// predict mode (the rest only releases memory).
void CudaTrainingStep::bind_handles() {
  // The handles are shared by the backend's steps: point them at this one.
  HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
  HISTOCNN_CUDA(cublasSetStream(context_->cublas, stream_));
  HISTOCNN_CUDA(cublasSetWorkspace(context_->cublas, persistent(layout_.cublas), kCublasWorkspace));
  // bf16 keeps the dense layers in fp32 (about 1% of the step's arithmetic),
  // on TF32 tensor cores like tf32.
  HISTOCNN_CUDA(cublasSetMathMode(context_->cublas, options_.precision == "fp32"
                                                        ? CUBLAS_PEDANTIC_MATH
                                                        : CUBLAS_TF32_TENSOR_OP_MATH));
}

// With `timing` (a training step): phase[1] is recorded after the loss, the
// allocator's host seconds are split at the same point, and with
// --profile-layers an event goes before every operation and after the last.
void CudaTrainingStep::run(Mode mode, bool training, int slot, StepTiming* timing, float* features,
                           int count) {
  bind_handles();
  const int last = mode == Mode::kPredict ? schedule_.loss_op : int(schedule_.ops.size()) - 1;
  const bool per_op = timing && !timing->ops.empty();
  const double allocator_before = memory_->allocator_seconds();
  int k = 0;
  try {
    for (; k < int(schedule_.ops.size()); ++k) {
      if (k <= last) {
        memory_->begin_op(k);
        if (per_op) HISTOCNN_CUDA(cudaEventRecord(timing->ops[size_t(k)], stream_));
        run_op(schedule_.ops[size_t(k)], mode, training, slot);
        if (features && k == schedule_.loss_op) {
          // Alive past the loss (dense backward reads it): not yet released.
          const auto& last = schedule_.denses.back();
          HISTOCNN_CUDA(cudaMemcpyAsync(features, tensor(last.src),
                                        sizeof(float) * size_t(count) * size_t(last.in),
                                        cudaMemcpyDeviceToHost, stream_));
        }
      }
      memory_->end_op(k);
      if (timing && k == schedule_.loss_op) {
        HISTOCNN_CUDA(cudaEventRecord(timing->phase[1], stream_));
        timing->allocator_forward = memory_->allocator_seconds() - allocator_before;
      }
    }
    if (per_op) HISTOCNN_CUDA(cudaEventRecord(timing->ops.back(), stream_));
    if (timing)
      timing->allocator_backward =
          memory_->allocator_seconds() - allocator_before - timing->allocator_forward;
    check_launch("training step");
  } catch (const OutOfMemory& e) {
    memory_->abandon_step();
    throw OutOfMemory(e.requested, e.stats, resource_->name(),
                      OutOfMemory::join(e.hint, oom_hint()));
  } catch (...) {
    memory_->abandon_step();
    throw;
  }
}

}  // namespace histocnn::cuda
