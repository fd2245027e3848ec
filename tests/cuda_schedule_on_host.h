// The CUDA step's schedule executed on the host (no GPU): naive reference
// layers stand in for cuDNN, host_gemm runs the exact GemmCall the step
// passes to cuBLAS, and our kernels' per-element functions
// (cuda_kernels_on_host.h) run as they do on the device. Memory goes through
// StepMemory over a host resource, planned (freed tensors are poisoned with
// NaN, so a lifetime that ends too early shows) or per tensor (freed tensors
// are really freed: ASan sees a late read). Shared by test_cuda_schedule.cpp
// (fp32) and test_cuda_schedule_bf16.cpp (--precision bf16).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "conv_pool_on_host.h"
#include "cuda_kernels_on_host.h"
#include "memory/adaptors.h"
#include "memory/host_resource.h"
#include "memory/step_memory.h"
#include "nn/elementwise.h"
#include "nn/reference.h"
#include "pooled_dgrad_on_host.h"
#include "pooled_wgrad_on_host.h"
#include "test_util.h"

namespace histocnn::cuda {

struct HostRun {
  double loss = 0;
  int correct = 0;
  std::vector<float> probs;
  // The last dense layer's input rows [0, count), read right after the loss
  // op as CudaTrainingStep::predict_features copies them.
  std::vector<float> features;
  Parameters grads;
  uint64_t allocator_calls = 0;
};

// A map tensor's values (T: how the step stores the conv blocks' maps, float
// or Bf16) from floats, rounding as the device does.
template <typename T>
inline void narrow(const std::vector<float>& v, void* p) {
  for (size_t i = 0; i < v.size(); ++i) store(static_cast<T*>(p), int64_t(i), v[i]);
}

// `meta`: the rows given (count), and for a slice of a data-parallel batch its
// global row count and first global row, as the CUDA step stages them.
// Batch norm (when the network has it) normalises with the batch's statistics
// and updates `buffers` (training) or uses them (inference), as cuDNN's
// batch-norm calls do. T = Bf16: the schedule of --precision bf16, with the
// conv blocks' maps kept in bf16, the convolutions reading bf16 weights and
// batch norm as our kernels (bn_kernels.h, run through on_host::bn_*).
// channels_last: the schedule of --channels-last; cuDNN's stand-ins read and
// write its maps through MapLayout, our kernels run in their channels-last
// thread structure.
template <typename T>
HostRun run_schedule_as(const NetworkShape& shape, const Parameters& params, const float* images,
                        const int32_t* labels, const BatchMeta& meta, bool training, uint64_t seed,
                        int64_t step, bool planned, const std::vector<ConvWorkspaces>& workspaces,
                        Buffers* buffers, elementwise::LabelSmoothing smoothing, bool channels_last,
                        std::vector<ConvRoutes> routes) {
  constexpr bool bf16 = std::is_same_v<T, Bf16>;
  const int count = meta.count;
  const int denominator = meta.global_count > 0 ? meta.global_count : count;
  const CudaSchedule s = build_cuda_schedule(shape, workspaces, {bf16, channels_last}, routes);
  HostResource host;
  StatisticsAdaptor stats(host);
  std::vector<void*> at(s.tensors.size(), nullptr);
  StepMemory memory(s.tensors, int(s.ops.size()), stats, nullptr, planned,
                    [&](size_t i, void* p) { at[i] = p; });
  auto f = [&](int id) {
    EXPECT_FALSE(s.bf16_tensor[size_t(id)]) << s.tensors[size_t(id)].name << " read as fp32";
    return static_cast<float*>(at[size_t(id)]);
  };
  auto map = [&](int id) {
    EXPECT_EQ(s.bf16_tensor[size_t(id)], bf16) << s.tensors[size_t(id)].name;
    return static_cast<T*>(at[size_t(id)]);
  };
  // A map's values in channels-first order (what the reference layers take),
  // and back into the map as the step lays it out.
  auto nchw_values = [&](int id, const Dims4& d, bool last) {
    std::vector<float> v(size_t(d.count()));
    for (int64_t i = 0; i < d.count(); ++i)
      v[size_t(i)] = relaid_at(map(id), d.layout(last), d.layout(false), i);
    return v;
  };
  auto store_map = [&](int id, const std::vector<float>& nchw, const Dims4& d, bool last) {
    for (int64_t i = 0; i < d.count(); ++i)
      store(map(id), i, relaid_at(nchw.data(), d.layout(false), d.layout(last), i));
  };
  HostRun r;
  r.grads = Parameters::zeros(shape);
  r.probs.assign(size_t(shape.batch) * size_t(shape.classes()), 0);
  const int n = shape.batch;
  auto w = [&](const std::string& name) { return params.data(params.info(name)); };
  auto g = [&](const std::string& name) { return r.grads.data(r.grads.info(name)); };
  // The weights the convolutions read: the bf16 shadow under bf16.
  auto conv_weights = [&](const std::string& name) {
    const auto& info = params.info(name);
    std::vector<float> v(params.data(info), params.data(info) + info.size);
    if (bf16)
      for (float& x : v) x = round_to_bf16(x);
    return v;
  };
  // cuDNN's saved batch statistics (persistent in the step, not planned).
  std::vector<std::vector<float>> saved_mean(shape.convs.size()), saved_var(shape.convs.size());
  std::vector<bool> poison(s.tensors.size(), true);
  for (const auto& t : s.tensors)
    if (t.in_place_of >= 0) poison[size_t(t.in_place_of)] = false;
  // Inference through batch norm: the step's predict mode runs forward and
  // loss only (the rest of the schedule just releases memory).
  const bool forward_only = !training && shape.has_batch_norm();
  for (size_t k = 0; k < s.ops.size(); ++k) {
    memory.begin_op(int(k));
    if (forward_only && int(k) > s.loss_op) {
      memory.end_op(int(k));
      continue;
    }
    const ScheduledOp& op = s.ops[k];
    const std::string conv = "conv" + std::to_string(op.layer + 1);
    const std::string fc = "fc" + std::to_string(op.layer + 1);
    switch (op.kind) {
      case OpKind::kInput: {
        const size_t per = size_t(shape.channels) * shape.height * shape.width;
        std::fill(f(s.input), f(s.input) + per * size_t(n), 0.0f);
        std::copy(images, images + per * size_t(count), f(s.input));
        if (channels_last)  // the device relays it out (and rounds it under bf16)
          on_host::relayout(f(s.input), map(s.conv_input), n, s.convs[0].x.layout(true));
        else if (bf16)  // the device rounds the staged batch into conv1's input
          narrow<T>(std::vector<float>(f(s.input), f(s.input) + per * size_t(n)),
                    map(s.conv_input));
        break;
      }
      case OpKind::kConvForward: {
        const auto& c = s.convs[size_t(op.layer)];
        const ConvShape& cs = shape.convs[size_t(op.layer)];
        // With batch norm, the ReLU follows the normalisation; with a pool,
        // the pool kernel adds the bias and applies the ReLU; under bf16 the
        // bias_relu kernel does, after the convolution's output is rounded.
        const bool final_output = !c.batch_norm && cs.pool == 1;
        const bool fused = final_output && !bf16;
        const auto x = nchw_values(c.src, c.x, c.channels_last);
        std::vector<float> y(size_t(c.y.count()));
        reference::conv2d_forward(x.data(), conv_weights(conv + ".weight").data(),
                                  fused ? w(conv + ".bias") : nullptr, y.data(), n, c.x.c, c.x.h,
                                  c.x.w, cs.out_c, cs.kernel, cs.pad);
        if (fused) reference::relu_forward(y.data(), y.data(), c.y.count());
        store_map(c.conv_out, y, c.y, c.channels_last);
        if constexpr (bf16)
          if (final_output)
            on_host::bias_relu(map(c.conv_out), w(conv + ".bias"), n, c.y.layout(c.channels_last));
        if (c.ws_forward >= 0) static_cast<uint8_t*>(at[size_t(c.ws_forward)])[0] = 1;
        break;
      }
      case OpKind::kConvPoolForward: {  // our fused kernel, as many bands as the device's
        const auto& c = s.convs[size_t(op.layer)];
        const ConvShape& cs = shape.convs[size_t(op.layer)];
        const ConvPoolPlan plan = plan_conv_pool(c.x, c.y, cs.kernel, cs.pad, cs.pool, 4 * n,
                                                 c.channels_last, c.pooled_channels_last);
        EXPECT_TRUE(plan.applies);
        on_host::conv_pool_forward(map(c.src), w(conv + ".weight"), w(conv + ".bias"),
                                   map(c.pooled), static_cast<uint8_t*>(at[size_t(c.argmax)]), c.x,
                                   c.y, cs.kernel, cs.pad, plan);
        break;
      }
      case OpKind::kPoolForward: {
        const auto& c = s.convs[size_t(op.layer)];
        on_host::max_pool_forward(map(c.act), c.batch_norm ? nullptr : w(conv + ".bias"),
                                  map(c.pooled), static_cast<uint8_t*>(at[size_t(c.argmax)]),
                                  c.pool_maps());
        break;
      }
      case OpKind::kBatchNormForward: {
        const auto& c = s.convs[size_t(op.layer)];
        const std::string bn = "bn" + std::to_string(op.layer + 1);
        const int hw = c.y.h * c.y.w;
        if (bf16 || channels_last) {  // our kernels (bn_kernels.h), as the step runs them
          saved_mean[size_t(op.layer)].resize(size_t(c.y.c));
          saved_var[size_t(op.layer)].resize(size_t(c.y.c));  // holds inv_std here
          on_host::bn_relu_forward(map(c.conv_out), map(c.bn_out), w(bn + ".weight"),
                                   w(bn + ".bias"), saved_mean[size_t(op.layer)].data(),
                                   saved_var[size_t(op.layer)].data(),
                                   buffers->running_mean(op.layer), buffers->running_var(op.layer),
                                   training, n, c.y.layout(c.channels_last));
          break;
        }
        if (training) {
          saved_mean[size_t(op.layer)].resize(size_t(c.y.c));
          saved_var[size_t(op.layer)].resize(size_t(c.y.c));
          reference::batchnorm_forward_train(f(c.conv_out), w(bn + ".weight"), w(bn + ".bias"),
                                             f(c.bn_out), saved_mean[size_t(op.layer)].data(),
                                             saved_var[size_t(op.layer)].data(), n, c.y.c, hw);
          buffers->update(op.layer, saved_mean[size_t(op.layer)].data(),
                          saved_var[size_t(op.layer)].data(), c.y.c, int64_t(n) * hw);
        } else {
          reference::batchnorm_forward_infer(
              f(c.conv_out), w(bn + ".weight"), w(bn + ".bias"), buffers->running_mean(op.layer),
              buffers->running_var(op.layer), f(c.bn_out), n, c.y.c, hw);
        }
        reference::relu_forward(f(c.bn_out), f(c.bn_out), c.y.count());
        break;
      }
      case OpKind::kBatchNormBackward: {
        const auto& c = s.convs[size_t(op.layer)];
        const std::string bn = "bn" + std::to_string(op.layer + 1);
        if (bf16 || channels_last) {
          on_host::bn_backward(map(c.d_act), map(c.conv_out), map(c.d_conv_out), w(bn + ".weight"),
                               saved_mean[size_t(op.layer)].data(),
                               saved_var[size_t(op.layer)].data(), g(bn + ".weight"),
                               g(bn + ".bias"), n, c.y.layout(c.channels_last));
          break;
        }
        reference::batchnorm_backward(
            f(c.conv_out), w(bn + ".weight"), saved_mean[size_t(op.layer)].data(),
            saved_var[size_t(op.layer)].data(), f(c.d_act), f(c.d_conv_out), g(bn + ".weight"),
            g(bn + ".bias"), n, c.y.c, c.y.h * c.y.w);
        break;
      }
      case OpKind::kToFloat: {
        const auto& last = s.convs.back();
        const auto v = nchw_values(last.pooled, last.pooled_dims, last.pooled_channels_last);
        std::copy(v.begin(), v.end(), f(s.features));
        break;
      }
      case OpKind::kToBf16: {
        const auto& last = s.convs.back();
        const float* d = f(s.d_features);
        narrow<T>(std::vector<float>(d, d + last.pooled_dims.count()), map(last.d_pooled));
        break;
      }
      case OpKind::kGlobalPoolForward: {
        const auto& last = s.convs.back();
        reference::global_avgpool_forward(f(s.features), f(s.gap_out), n, last.pooled_dims.c,
                                          last.pooled_dims.h * last.pooled_dims.w);
        break;
      }
      case OpKind::kGlobalPoolBackward: {
        const auto& last = s.convs.back();
        reference::global_avgpool_backward(f(s.d_gap), f(s.d_features), n, last.pooled_dims.c,
                                           last.pooled_dims.h * last.pooled_dims.w);
        break;
      }
      case OpKind::kDenseForward: {
        const auto& d = s.denses[size_t(op.layer)];
        host_gemm(dense_forward_gemm(n, d.in, d.outputs), w(fc + ".weight"), f(d.src), f(d.out));
        break;
      }
      case OpKind::kDenseActivation: {
        const auto& d = s.denses[size_t(op.layer)];
        const DenseShape& ds = shape.denses[size_t(op.layer)];
        float* y = f(d.out);
        for (int64_t i = 0; i < int64_t(n) * d.outputs; ++i)
          y[i] = dense_activation_at(i, y[i], w(fc + ".bias"), d.outputs, ds.relu,
                                     training ? ds.dropout_after : 0.0f, seed, step + 1, meta,
                                     op.layer);
        break;
      }
      case OpKind::kLoss: {
        const float* logits = f(s.logits);
        float* d = static_cast<float*>(at[size_t(s.d_logits)]);
        const int classes = shape.classes();
        for (int row = 0; row < n; ++row) {
          const size_t row_at = size_t(row) * size_t(classes);
          const LossRow l = loss_row(row, logits + row_at, classes, labels, meta, true,
                                     r.probs.data() + row_at, d + row_at, smoothing);
          if (l.real) r.loss += l.s.loss / denominator, r.correct += l.s.correct;
        }
        break;
      }
      case OpKind::kDenseActivationBackward: {
        const auto& d = s.denses[size_t(op.layer)];
        const DenseShape& ds = shape.denses[size_t(op.layer)];
        for (int64_t i = 0; i < int64_t(n) * d.outputs; ++i)
          f(d.d_out)[i] = dense_activation_backward_at(i, f(d.out)[i], f(d.d_out)[i], d.outputs,
                                                       training ? ds.dropout_after : 0.0f, seed,
                                                       step + 1, meta, op.layer);
        break;
      }
      case OpKind::kDenseBackwardWeights: {
        const auto& d = s.denses[size_t(op.layer)];
        host_gemm(dense_backward_weight_gemm(n, d.in, d.outputs), f(d.src), f(d.d_out),
                  g(fc + ".weight"));
        // The gemv with a ones vector: column sums of dY^T [out, N].
        for (int o = 0; o < d.outputs; ++o) {
          double sum = 0;
          for (int row = 0; row < n; ++row) sum += f(d.d_out)[size_t(row * d.outputs + o)];
          g(fc + ".bias")[o] = float(sum);
        }
        break;
      }
      case OpKind::kDenseBackwardData: {
        const auto& d = s.denses[size_t(op.layer)];
        host_gemm(dense_backward_data_gemm(n, d.in, d.outputs), w(fc + ".weight"), f(d.d_out),
                  f(d.d_src));
        break;
      }
      case OpKind::kPoolReluBackward: {
        const auto& c = s.convs[size_t(op.layer)];
        float* sums = c.bias_partials >= 0 ? f(c.bias_partials) : nullptr;
        on_host::pool_relu_backward(
            c.pool > 1 ? nullptr : map(c.pooled), map(c.d_pooled),
            c.pool > 1 ? static_cast<uint8_t*>(at[size_t(c.argmax)]) : nullptr,
            c.d_act >= 0 ? map(c.d_act) : nullptr, sums, c.pool_maps());
        if (sums)
          on_host::column_sums(sums, bias_partial_rows(c.pool_maps()), c.y.c, g(conv + ".bias"));
        break;
      }
      case OpKind::kConvBackwardFilter: {
        const auto& c = s.convs[size_t(op.layer)];
        const ConvShape& cs = shape.convs[size_t(op.layer)];
        // From the pooled gradient where the routes say; else our direct
        // kernel where it applies (as the step picks it when it is faster),
        // split into several bands per image; cuDNN's stand-in else, which
        // under bf16 writes the gradient in bf16 before it is widened.
        if (c.routes.pooled_weight_gradient && op.layer > 0) {  // the bias from pool backward
          const PooledWgradPlan pooled = plan_pooled_wgrad(
              c.x, c.y, cs.kernel, cs.pad, c.pool, 1 + op.layer % 2, 4 * n, c.channels_last);
          EXPECT_TRUE(pooled.applies);
          on_host::pooled_wgrad(map(c.src), map(c.d_pooled),
                                static_cast<uint8_t*>(at[size_t(c.argmax)]), g(conv + ".weight"),
                                c.x, c.y, c.pooled_channels_last, pooled);
          break;
        }
        if (c.routes.pooled_weight_gradient) {
          const SmallWgradPlan pooled =
              plan_small_wgrad_pooled(c.x, c.y, cs.kernel, cs.pad, c.pool, 4 * n, c.channels_last);
          EXPECT_TRUE(pooled.applies);
          on_host::small_wgrad_pooled(map(c.src), map(c.d_pooled),
                                      static_cast<uint8_t*>(at[size_t(c.argmax)]),
                                      g(conv + ".weight"), g(conv + ".bias"), c.x, c.y,
                                      c.pooled_channels_last, cs.kernel, cs.pad, pooled);
          break;
        }
        const SmallWgradPlan plan =
            plan_small_wgrad(c.x, c.y, cs.kernel, cs.pad, 4 * n, c.channels_last);
        if (plan.applies) {
          on_host::small_wgrad(map(c.src), map(c.d_conv_out), g(conv + ".weight"), c.x, c.y,
                               cs.kernel, cs.pad, plan);
          break;
        }
        const auto x = nchw_values(c.src, c.x, c.channels_last);
        const auto dy = nchw_values(c.d_conv_out, c.y, c.channels_last);
        float* dw = g(conv + ".weight");
        reference::conv2d_backward(x.data(), w(conv + ".weight"), dy.data(), nullptr, dw, nullptr,
                                   n, c.x.c, c.x.h, c.x.w, cs.out_c, cs.kernel, cs.pad);
        if (bf16)
          for (int64_t i = 0; i < params.info(conv + ".weight").size; ++i)
            dw[i] = round_to_bf16(dw[i]);
        break;
      }
      case OpKind::kConvBackwardData: {
        const auto& c = s.convs[size_t(op.layer)];
        const ConvShape& cs = shape.convs[size_t(op.layer)];
        if (c.routes.pooled_data_gradient) {  // our kernel, in the maps' type and layout
          // Both tile sizes (the same bits): 2x2 windows in even blocks, 4x4 in odd.
          const PooledDgradPlan plan = plan_pooled_dgrad(c.x, c.y, cs.kernel, cs.pad, c.pool,
                                                         2 + 2 * (op.layer % 2), c.channels_last);
          EXPECT_TRUE(plan.applies);
          const std::vector<float> oihw = conv_weights(conv + ".weight");
          const MapLayout from{cs.in_c, cs.kernel, cs.kernel, false},
              filters{cs.in_c, cs.kernel, cs.kernel, c.channels_last};
          std::vector<T> weights(oihw.size());
          for (int64_t i = 0; i < int64_t(oihw.size()); ++i)
            store(weights.data(), i, relaid_at(oihw.data(), from, filters, i));
          const auto& prev = s.convs[size_t(op.layer) - 1];
          on_host::pooled_dgrad(map(c.d_pooled), static_cast<uint8_t*>(at[size_t(c.argmax)]),
                                weights.data(), map(prev.d_pooled), c.x, c.y,
                                c.pooled_channels_last, plan);
          break;
        }
        // cuDNN's backward data reads only w and dy: give the naive layer a
        // zero x and throw its weight gradients away.
        std::vector<float> zero_x(size_t(c.x.count()), 0.0f), dx(size_t(c.x.count())),
            dw(size_t(cs.out_c) * cs.in_c * cs.kernel * cs.kernel), db(size_t(cs.out_c));
        const auto dy = nchw_values(c.d_conv_out, c.y, c.channels_last);
        reference::conv2d_backward(zero_x.data(), conv_weights(conv + ".weight").data(), dy.data(),
                                   dx.data(), dw.data(), db.data(), n, c.x.c, c.x.h, c.x.w,
                                   cs.out_c, cs.kernel, cs.pad);
        const auto& prev = s.convs[size_t(op.layer) - 1];
        store_map(prev.d_pooled, dx, prev.pooled_dims, prev.pooled_channels_last);
        break;
      }
    }
    if (int(k) == s.loss_op) {
      const float* x = f(s.denses.back().src);
      r.features.assign(x, x + size_t(count) * size_t(s.denses.back().in));
    }
    // Poison what dies here (planned mode: the arena keeps the bytes). All
    // ones is a NaN in fp32 and in bf16.
    if (planned)
      for (size_t t = 0; t < s.tensors.size(); ++t)
        if (s.tensors[t].last_use == int(k) && poison[t])
          std::memset(at[t], 0xff, s.tensors[t].bytes);
    memory.end_op(int(k));
  }
  r.allocator_calls = memory.allocator_calls();
  return r;
}

inline HostRun run_schedule(const NetworkShape& shape, const Parameters& params,
                            const float* images, const int32_t* labels, const BatchMeta& meta,
                            bool training, uint64_t seed, int64_t step, bool planned,
                            const std::vector<ConvWorkspaces>& workspaces = {},
                            Buffers* buffers = nullptr, elementwise::LabelSmoothing smoothing = {},
                            bool bf16 = false, bool channels_last = false,
                            const std::vector<ConvRoutes>& routes = {}) {
  if (bf16)
    return run_schedule_as<Bf16>(shape, params, images, labels, meta, training, seed, step, planned,
                                 workspaces, buffers, smoothing, channels_last, routes);
  return run_schedule_as<float>(shape, params, images, labels, meta, training, seed, step, planned,
                                workspaces, buffers, smoothing, channels_last, routes);
}

using testing::Case;

// A case's network, its weights (biases non-zero, so bias paths show), a
// batch of images and labels.
struct ScheduleInputs {
  NetworkShape shape;
  Parameters params;
  std::vector<float> images;
  std::vector<int32_t> labels;
};
inline ScheduleInputs schedule_inputs(const Case& c) {
  ScheduleInputs in;
  in.shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  in.params = Parameters::glorot(in.shape, 5);
  for (const auto& info : in.params.layout)
    if (info.is_bias)
      for (int64_t i = 0; i < info.size; ++i) in.params.data(info)[i] = 0.05f * float((i % 7) - 3);
  in.images = testing::random_vector(size_t(c.batch) * 3 * c.height * c.width, 17, 0, 1);
  in.labels.resize(size_t(c.batch));
  for (int i = 0; i < c.batch; ++i) in.labels[size_t(i)] = (i * 7 + 3) % in.shape.classes();
  return in;
}

// A batch-norm case's inputs: scales and shifts away from 1 and 0.
inline ScheduleInputs batch_norm_inputs(const Case& c) {
  ScheduleInputs in;
  in.shape = infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width);
  in.params = Parameters::glorot(in.shape, 8);
  for (const auto& info : in.params.layout)
    for (int64_t i = 0; i < info.size && (info.is_bias || info.starts_at_one); ++i)
      in.params.data(info)[i] += 0.05f * float((i % 7) - 3);
  in.images = testing::random_vector(size_t(c.batch) * 3 * c.height * c.width, 23, 0, 1);
  in.labels.resize(size_t(c.batch));
  for (int i = 0; i < c.batch; ++i) in.labels[size_t(i)] = (i * 3 + 1) % in.shape.classes();
  return in;
}

// The schedule (channels first or last) on the host against the reference
// network, planned and per tensor: loss, every gradient, probabilities and
// the features predict_features copies out (alive after the loss).
inline void expect_schedule_matches_reference(const Case& c, bool channels_last) {
  const auto [shape, params, images, labels] = schedule_inputs(c);
  const int64_t step = 4;
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, c.training, 99, step);
  // Workspaces of odd sizes, so the plan has them to place too.
  std::vector<ConvWorkspaces> ws;
  for (size_t k = 0; k < shape.convs.size(); ++k) ws.push_back({1000 * (k + 1), 3000, 777});
  for (bool planned : {true, false}) {
    const HostRun got =
        run_schedule(shape, params, images.data(), labels.data(), BatchMeta{c.count, 0, 0},
                     c.training, 99, step, planned, ws, nullptr, {}, false, channels_last);
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss)) << "planned " << planned;
    testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4,
                                    "planned " + std::to_string(planned));
    for (int i = 0; i < shape.classes() * c.count; ++i)
      EXPECT_NEAR(got.probs[size_t(i)], want.probs[size_t(i)], 1e-5);
    ASSERT_EQ(got.features.size(), size_t(c.count) * size_t(shape.denses.back().in));
    for (size_t i = 0; i < got.features.size(); ++i)
      ASSERT_NEAR(got.features[i], want.features[i], 1e-5) << "feature " << i;
    if (planned)
      EXPECT_EQ(got.allocator_calls, 1u);
    else
      EXPECT_GT(got.allocator_calls, 2 * shape.convs.size());
  }
}

// A batch-norm network's schedule (channels first or last) against the
// reference: training gradients and running statistics, then inference with
// them, planned and per tensor.
inline void expect_batch_norm_schedule_matches_reference(const Case& c, bool channels_last) {
  const auto [shape, params, images, labels] = batch_norm_inputs(c);
  Buffers want_buffers = Buffers::initial(shape);
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, true, 5, 2, &want_buffers);
  for (bool planned : {true, false}) {
    Buffers buffers = Buffers::initial(shape);
    const HostRun got =
        run_schedule(shape, params, images.data(), labels.data(), BatchMeta{c.count, 0, 0}, true, 5,
                     2, planned, {}, &buffers, {}, false, channels_last);
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss)) << "planned " << planned;
    testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4,
                                    "planned " + std::to_string(planned));
    for (size_t i = 0; i < buffers.values.size(); ++i)
      EXPECT_NEAR(buffers.values[i], want_buffers.values[i], 1e-6) << i;
    const HostRun inferred =
        run_schedule(shape, params, images.data(), labels.data(), BatchMeta{c.count, 0, 0}, false,
                     5, 2, planned, {}, &buffers, {}, false, channels_last);
    const auto want_inferred = reference::network_forward_backward(
        shape, params, images.data(), labels.data(), c.count, false, 5, 2, &want_buffers);
    for (int i = 0; i < shape.classes() * c.count; ++i)
      EXPECT_NEAR(inferred.probs[size_t(i)], want_inferred.probs[size_t(i)], 1e-5);
  }
}

}  // namespace histocnn::cuda
