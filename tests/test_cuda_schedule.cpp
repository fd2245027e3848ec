// The CUDA step's logic, verified without a GPU. The schedule the CUDA step
// dispatches over (tensors, order, lifetimes, in-place links, cuBLAS operand
// mapping) is executed here on the host: naive reference layers stand in for
// cuDNN, host_gemm runs the exact GemmCall the step passes to cublasSgemm, and
// our kernels' per-element functions (nn/elementwise.h) run as they do on the
// device. Memory goes through StepMemory over a host resource, planned (freed
// tensors are poisoned with NaN, so a lifetime that ends too early shows) and
// per tensor (freed tensors are really freed: ASan sees a late read). The
// results must equal the reference network's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "core/error.h"
#include "cuda_kernels_on_host.h"
#include "memory/adaptors.h"
#include "memory/host_resource.h"
#include "memory/step_memory.h"
#include "nn/elementwise.h"
#include "nn/reference.h"
#include "test_util.h"

namespace histocnn::cuda {
namespace {

struct HostRun {
  double loss = 0;
  int correct = 0;
  std::vector<float> probs;
  Parameters grads;
  uint64_t allocator_calls = 0;
};

// A map tensor's values as floats (T: how the step stores the conv blocks'
// maps, float or Bf16), and back, rounding as the device does.
template <typename T>
std::vector<float> widen(const void* p, int64_t count) {
  std::vector<float> v(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) v[size_t(i)] = load(static_cast<const T*>(p), i);
  return v;
}
template <typename T>
void narrow(const std::vector<float>& v, void* p) {
  for (size_t i = 0; i < v.size(); ++i) store(static_cast<T*>(p), int64_t(i), v[i]);
}

// `meta`: the rows given (count), and for a slice of a data-parallel batch its
// global row count and first global row, as the CUDA step stages them.
// Batch norm (when the network has it) normalises with the batch's statistics
// and updates `buffers` (training) or uses them (inference), as cuDNN's
// batch-norm calls do. T = Bf16: the schedule of --precision bf16, with the
// conv blocks' maps kept in bf16 and the convolutions reading bf16 weights.
template <typename T>
HostRun run_schedule_as(const NetworkShape& shape, const Parameters& params, const float* images,
                        const int32_t* labels, const BatchMeta& meta, bool training, uint64_t seed,
                        int64_t step, bool planned, const std::vector<ConvWorkspaces>& workspaces,
                        Buffers* buffers, elementwise::LabelSmoothing smoothing) {
  constexpr bool bf16 = std::is_same_v<T, Bf16>;
  const int count = meta.count;
  const int denominator = meta.global_count > 0 ? meta.global_count : count;
  const CudaSchedule s = build_cuda_schedule(shape, workspaces, bf16);
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
  auto map_values = [&](int id, int64_t elements) { return widen<T>(map(id), elements); };
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
        if (bf16)  // the device rounds the staged batch into conv1's input
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
        const auto x = map_values(c.src, c.x.count());
        std::vector<float> y(size_t(c.y.count()));
        reference::conv2d_forward(x.data(), conv_weights(conv + ".weight").data(),
                                  fused ? w(conv + ".bias") : nullptr, y.data(), n, c.x.c, c.x.h,
                                  c.x.w, cs.out_c, cs.kernel, cs.pad);
        if (fused) reference::relu_forward(y.data(), y.data(), c.y.count());
        narrow<T>(y, map(c.conv_out));
        if constexpr (bf16)
          if (final_output)
            on_host::bias_relu(map(c.conv_out), w(conv + ".bias"), n * c.y.c, c.y.c,
                               int64_t(c.y.h) * c.y.w);
        if (c.ws_forward >= 0) static_cast<uint8_t*>(at[size_t(c.ws_forward)])[0] = 1;
        break;
      }
      case OpKind::kPoolForward: {
        const auto& c = s.convs[size_t(op.layer)];
        on_host::max_pool_forward(map(c.act), c.batch_norm ? nullptr : w(conv + ".bias"),
                                  map(c.pooled), static_cast<uint8_t*>(at[size_t(c.argmax)]),
                                  n * c.y.c, c.y.c,
                                  {c.y.h, c.y.w, shape.convs[size_t(op.layer)].pool});
        break;
      }
      case OpKind::kBatchNormForward: {
        const auto& c = s.convs[size_t(op.layer)];
        const std::string bn = "bn" + std::to_string(op.layer + 1);
        const int hw = c.y.h * c.y.w;
        if constexpr (bf16) {  // our kernels (bn_kernels.h), as the step runs them
          saved_mean[size_t(op.layer)].resize(size_t(c.y.c));
          saved_var[size_t(op.layer)].resize(size_t(c.y.c));  // holds inv_std here
          on_host::bn_relu_forward(map(c.conv_out), map(c.bn_out), w(bn + ".weight"),
                                   w(bn + ".bias"), saved_mean[size_t(op.layer)].data(),
                                   saved_var[size_t(op.layer)].data(),
                                   buffers->running_mean(op.layer), buffers->running_var(op.layer),
                                   training, n, c.y.c, hw);
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
        if constexpr (bf16) {
          on_host::bn_backward(map(c.d_act), map(c.conv_out), map(c.d_conv_out), w(bn + ".weight"),
                               saved_mean[size_t(op.layer)].data(),
                               saved_var[size_t(op.layer)].data(), g(bn + ".weight"),
                               g(bn + ".bias"), n, c.y.c, c.y.h * c.y.w);
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
        const auto v = map_values(last.pooled, last.pooled_dims.count());
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
        const int pool = shape.convs[size_t(op.layer)].pool;
        float* sums = c.bias_partials >= 0 ? f(c.bias_partials) : nullptr;
        on_host::pool_relu_backward(
            map(c.pooled), map(c.d_pooled),
            pool > 1 ? static_cast<uint8_t*>(at[size_t(c.argmax)]) : nullptr, map(c.d_act), sums,
            n * c.y.c, {c.y.h, c.y.w, pool});
        if (sums) on_host::column_sums(sums, n, c.y.c, g(conv + ".bias"));
        break;
      }
      case OpKind::kConvBackwardFilter: {
        const auto& c = s.convs[size_t(op.layer)];
        const ConvShape& cs = shape.convs[size_t(op.layer)];
        // Our direct kernel where it applies (as the step picks it when it is
        // faster), split into several bands per image; cuDNN's stand-in else,
        // which under bf16 writes the gradient in bf16 before it is widened.
        const SmallWgradPlan plan = plan_small_wgrad(c.x, c.y, cs.kernel, cs.pad, 4 * n);
        if (plan.applies) {
          on_host::small_wgrad(map(c.src), map(c.d_conv_out), g(conv + ".weight"), c.x, c.y,
                               cs.kernel, cs.pad, plan);
          break;
        }
        const auto x = map_values(c.src, c.x.count());
        const auto dy = map_values(c.d_conv_out, c.y.count());
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
        // cuDNN's backward data reads only w and dy: give the naive layer a
        // zero x and throw its weight gradients away.
        std::vector<float> zero_x(size_t(c.x.count()), 0.0f), dx(size_t(c.x.count())),
            dw(size_t(cs.out_c) * cs.in_c * cs.kernel * cs.kernel), db(size_t(cs.out_c));
        const auto dy = map_values(c.d_conv_out, c.y.count());
        reference::conv2d_backward(zero_x.data(), conv_weights(conv + ".weight").data(), dy.data(),
                                   dx.data(), dw.data(), db.data(), n, c.x.c, c.x.h, c.x.w,
                                   cs.out_c, cs.kernel, cs.pad);
        narrow<T>(dx, map(s.convs[size_t(op.layer) - 1].d_pooled));
        break;
      }
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

HostRun run_schedule(const NetworkShape& shape, const Parameters& params, const float* images,
                     const int32_t* labels, const BatchMeta& meta, bool training, uint64_t seed,
                     int64_t step, bool planned, const std::vector<ConvWorkspaces>& workspaces = {},
                     Buffers* buffers = nullptr, elementwise::LabelSmoothing smoothing = {},
                     bool bf16 = false) {
  if (bf16)
    return run_schedule_as<Bf16>(shape, params, images, labels, meta, training, seed, step, planned,
                                 workspaces, buffers, smoothing);
  return run_schedule_as<float>(shape, params, images, labels, meta, training, seed, step, planned,
                                workspaces, buffers, smoothing);
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
ScheduleInputs schedule_inputs(const Case& c) {
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

class CudaScheduleOnHost : public ::testing::TestWithParam<Case> {};

TEST_P(CudaScheduleOnHost, MatchesTheReferenceNetworkPlannedAndPerTensor) {
  const Case& c = GetParam();
  const ScheduleInputs in = schedule_inputs(c);
  const NetworkShape& shape = in.shape;
  const Parameters& params = in.params;
  const std::vector<float>& images = in.images;
  const std::vector<int32_t>& labels = in.labels;
  const int64_t step = 4;
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, c.training, 99, step);
  // Workspaces of odd sizes, so the plan has them to place too.
  std::vector<ConvWorkspaces> ws;
  for (size_t k = 0; k < shape.convs.size(); ++k) ws.push_back({1000 * (k + 1), 3000, 777});
  for (bool planned : {true, false}) {
    const HostRun got = run_schedule(shape, params, images.data(), labels.data(),
                                     BatchMeta{c.count, 0, 0}, c.training, 99, step, planned, ws);
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss)) << "planned " << planned;
    testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4,
                                    "planned " + std::to_string(planned));
    for (int i = 0; i < shape.classes() * c.count; ++i)
      EXPECT_NEAR(got.probs[size_t(i)], want.probs[size_t(i)], 1e-5);
    if (planned)
      EXPECT_EQ(got.allocator_calls, 1u);
    else
      EXPECT_GT(got.allocator_calls, 2 * shape.convs.size());
  }
}

// --precision bf16 through the same schedule: the conv blocks' maps, their
// gradients and the weights the convolutions read are rounded to bf16; the
// dense part, the loss and every sum stay fp32. Its loss and gradients must
// stay within bf16's rounding of the reference network's, be the same bits
// planned and per tensor, and differ from fp32's (the rounding happened).
// An independent bf16 network for the comparison below: the reference layers,
// with bf16 rounding wherever --precision bf16 keeps a value in bf16 (conv1's
// input, the weights the convolutions read, every conv output, pooled map and
// their gradients; cuDNN's weight gradients except conv1's, which our kernel
// sums in fp32) and fp32 everywhere else. No dropout, no batch norm.
// PaperNet's loss on bf16 stays within 1% of fp32's, but its conv gradients
// can move by a third of their largest value: max-pool and ReLU make the
// gradient discontinuous, and rounding the input and weights by a bf16 unit
// (2^-8) moves the fp32 reference's gradients as far. So the test holds bf16
// to this network, not to fp32's gradients.
std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_to_bf16(x);
  return v;
}

reference::NetworkResult bf16_reference(const NetworkShape& shape, const Parameters& params,
                                        const float* images, const int32_t* labels, int count) {
  const int n = shape.batch;
  reference::NetworkResult r;
  r.grads = Parameters::zeros(shape);
  auto w = [&](const std::string& name) {
    const auto& i = params.info(name);
    return std::vector<float>(params.data(i), params.data(i) + i.size);
  };
  auto g = [&](const std::string& name) { return r.grads.data(r.grads.info(name)); };
  std::vector<float> x(size_t(n) * 3 * shape.height * shape.width, 0.0f);
  std::copy(images, images + x.size() / size_t(n) * size_t(count), x.begin());
  std::vector<std::vector<float>> inputs, acts, pooled;  // per conv block
  x = rounded(x);
  for (size_t k = 0; k < shape.convs.size(); ++k) {
    const ConvShape& cs = shape.convs[k];
    const std::string conv = "conv" + std::to_string(k + 1);
    const int64_t plane = int64_t(cs.conv_h) * cs.conv_w;
    std::vector<float> y(size_t(n * cs.out_c * plane));
    reference::conv2d_forward(x.data(), rounded(w(conv + ".weight")).data(), nullptr, y.data(), n,
                              cs.in_c, cs.in_h, cs.in_w, cs.out_c, cs.kernel, cs.pad);
    y = rounded(y);
    const auto b = w(conv + ".bias");
    for (size_t i = 0; i < y.size(); ++i)
      y[i] = std::max(y[i] + b[(i / size_t(plane)) % size_t(cs.out_c)], 0.0f);
    std::vector<float> p(size_t(n * cs.out_c * cs.out_h * cs.out_w));
    if (cs.pool > 1)
      reference::maxpool_forward(y.data(), p.data(), n, cs.out_c, cs.conv_h, cs.conv_w, cs.pool);
    else
      p = y;
    inputs.push_back(x);
    acts.push_back(y);
    pooled.push_back(rounded(p));
    x = pooled.back();
  }
  const ConvShape& last = shape.convs.back();
  const int last_hw = last.out_h * last.out_w;
  if (shape.global_pool) {
    std::vector<float> means(size_t(n * last.out_c));
    reference::global_avgpool_forward(x.data(), means.data(), n, last.out_c, last_hw);
    x = means;
  }
  std::vector<std::vector<float>> dense_in;
  for (size_t j = 0; j < shape.denses.size(); ++j) {
    const DenseShape& ds = shape.denses[j];
    const std::string fc = "fc" + std::to_string(j + 1);
    std::vector<float> y(size_t(n * ds.out));
    reference::dense_forward(x.data(), w(fc + ".weight").data(), w(fc + ".bias").data(), y.data(),
                             n, ds.in, ds.out);
    if (ds.relu) reference::relu_forward(y.data(), y.data(), int64_t(y.size()));
    dense_in.push_back(x);
    x = y;
  }
  std::vector<float> dy(x.size());
  r.probs.resize(x.size());
  r.loss = reference::softmax_cross_entropy(x.data(), labels, n, shape.classes(), count, dy.data(),
                                            r.probs.data());
  for (size_t j = shape.denses.size(); j-- > 0;) {
    const DenseShape& ds = shape.denses[j];
    const std::string fc = "fc" + std::to_string(j + 1);
    if (ds.relu) reference::relu_backward(x.data(), dy.data(), dy.data(), int64_t(dy.size()));
    std::vector<float> dx(dense_in[j].size());
    reference::dense_backward(dense_in[j].data(), w(fc + ".weight").data(), dy.data(), dx.data(),
                              g(fc + ".weight"), g(fc + ".bias"), n, ds.in, ds.out);
    x = dense_in[j];
    dy = dx;
  }
  if (shape.global_pool) {
    std::vector<float> dx(pooled.back().size());
    reference::global_avgpool_backward(dy.data(), dx.data(), n, last.out_c, last_hw);
    dy = dx;
  }
  for (size_t k = shape.convs.size(); k-- > 0;) {
    const ConvShape& cs = shape.convs[k];
    const std::string conv = "conv" + std::to_string(k + 1);
    const auto d_pooled = rounded(dy);
    std::vector<float> masked(d_pooled.size()), d_act(acts[k].size());
    reference::relu_backward(pooled[k].data(), d_pooled.data(), masked.data(),
                             int64_t(masked.size()));
    if (cs.pool > 1)
      reference::maxpool_backward(acts[k].data(), masked.data(), d_act.data(), n, cs.out_c,
                                  cs.conv_h, cs.conv_w, cs.pool);
    else
      d_act = masked;
    std::vector<float> dx(inputs[k].size()), db(size_t(cs.out_c));
    reference::conv2d_backward(inputs[k].data(), rounded(w(conv + ".weight")).data(), d_act.data(),
                               dx.data(), g(conv + ".weight"), g(conv + ".bias"), n, cs.in_c,
                               cs.in_h, cs.in_w, cs.out_c, cs.kernel, cs.pad);
    const auto& info = r.grads.info(conv + ".weight");
    if (k > 0)  // cuDNN's bf16 weight gradient
      for (int64_t i = 0; i < info.size; ++i)
        g(conv + ".weight")[i] = round_to_bf16(g(conv + ".weight")[i]);
    dy = rounded(dx);
  }
  return r;
}

// Each parameter tensor's gradient points where the reference's does
// (cosine > 0.9): what bf16 is held to, as max-pool and ReLU make gradients
// discontinuous (0.96-1.0 on these cases).
void expect_same_directions(const Parameters& got, const Parameters& want) {
  for (const auto& info : want.layout) {
    double dot = 0, a2 = 0, b2 = 0;
    for (int64_t i = 0; i < info.size; ++i) {
      const double a = got.data(info)[i], b = want.data(info)[i];
      dot += a * b, a2 += a * a, b2 += b * b;
    }
    EXPECT_GT(dot / std::sqrt(std::max(a2 * b2, 1e-300)), 0.9) << info.name;
  }
}

class CudaScheduleBf16OnHost : public ::testing::TestWithParam<Case> {};

TEST_P(CudaScheduleBf16OnHost, MatchesAnIndependentBf16NetworkAndStaysNearFp32) {
  const Case& c = GetParam();
  const ScheduleInputs in = schedule_inputs(c);
  const NetworkShape& shape = in.shape;
  const Parameters& params = in.params;
  const std::vector<float>& images = in.images;
  const std::vector<int32_t>& labels = in.labels;
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, c.training, 99, 4);
  const BatchMeta meta{c.count, 0, 0};
  const HostRun planned = run_schedule(shape, params, images.data(), labels.data(), meta,
                                       c.training, 99, 4, true, {}, nullptr, {}, true);
  const HostRun per_tensor = run_schedule(shape, params, images.data(), labels.data(), meta,
                                          c.training, 99, 4, false, {}, nullptr, {}, true);
  EXPECT_EQ(planned.grads.values, per_tensor.grads.values);
  EXPECT_EQ(planned.loss, per_tensor.loss);
  EXPECT_NEAR(planned.loss, want.loss, 1e-2 * std::max(1.0, want.loss));
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(planned.probs[size_t(i)], want.probs[size_t(i)], 1e-2);
  const HostRun fp32 =
      run_schedule(shape, params, images.data(), labels.data(), meta, c.training, 99, 4, true);
  EXPECT_NE(planned.grads.values, fp32.grads.values);
  // Each tensor's gradient points where fp32's does (what `selftest --device
  // cuda` holds the GPU's bf16 step to; 0.96-1.0 here).
  expect_same_directions(planned.grads, want.grads);
  // Against the independent bf16 network (no dropout drawn): the same
  // roundings in the same places give the same values but for the order of
  // fp32 sums, which can tip a value rounded to bf16 by one unit (2^-8 of
  // the largest: the tolerance).
  const HostRun inference = run_schedule(shape, params, images.data(), labels.data(), meta, false,
                                         99, 4, true, {}, nullptr, {}, true);
  const auto emulated = bf16_reference(shape, params, images.data(), labels.data(), c.count);
  EXPECT_NEAR(inference.loss, emulated.loss, 1e-5 * std::max(1.0, emulated.loss));
  testing::expect_gradients_match(inference.grads, emulated.grads, 1e-6, 4e-3, "bf16 emulated");
}

// What --precision bf16 changes in the plan: the conv blocks' maps and their
// gradients take two bytes (conv1's input gets a bf16 copy, the dense part an
// fp32 one of the last map), so the arena about halves.
TEST(CudaSchedule, Bf16KeepsTheConvMapsInTwoBytes) {
  const NetworkShape shape = infer_shapes(default_model_spec(), 50, 200, 200);
  const CudaSchedule fp32 = build_cuda_schedule(shape);
  const CudaSchedule bf16 = build_cuda_schedule(shape, {}, true);
  EXPECT_FALSE(fp32.bf16);
  EXPECT_EQ(std::count(fp32.bf16_tensor.begin(), fp32.bf16_tensor.end(), true), 0);
  EXPECT_EQ(bf16.conv_input, bf16.convs[0].src);
  EXPECT_NE(bf16.conv_input, bf16.input);
  EXPECT_EQ(bf16.denses[0].src, bf16.features);
  EXPECT_NE(bf16.features, bf16.convs.back().pooled);
  for (size_t k = 0; k < bf16.convs.size(); ++k) {
    const auto& c = bf16.convs[k];
    const std::pair<int, int64_t> maps[] = {{c.src, c.x.count()},
                                            {c.conv_out, c.y.count()},
                                            {c.pooled, c.pooled_dims.count()},
                                            {c.d_pooled, c.pooled_dims.count()},
                                            {c.d_act, c.y.count()},
                                            {c.d_conv_out, c.y.count()}};
    for (const auto& [id, elements] : maps) {
      EXPECT_TRUE(bf16.bf16_tensor[size_t(id)]) << bf16.tensors[size_t(id)].name;
      EXPECT_EQ(bf16.tensors[size_t(id)].bytes, size_t(elements) * 2)
          << bf16.tensors[size_t(id)].name;
    }
    EXPECT_FALSE(bf16.bf16_tensor[size_t(c.bias_partials)]);
  }
  for (int id : {bf16.input, bf16.features, bf16.d_features, bf16.logits})
    EXPECT_FALSE(bf16.bf16_tensor[size_t(id)]) << bf16.tensors[size_t(id)].name;
  const size_t arena32 = plan_memory(fp32.tensors).arena_bytes;
  const size_t arena16 = plan_memory(bf16.tensors).arena_bytes;
  EXPECT_LT(arena16, arena32 * 6 / 10);
  EXPECT_GT(arena16, arena32 * 4 / 10);
  EXPECT_NO_THROW(validate_plan(bf16.tensors, plan_memory(bf16.tensors)));
  EXPECT_EQ(persistent_bytes(shape, true) - persistent_bytes(shape),
            size_t(shape.parameter_count()) * 4);
  // Batch norm: cuDNN's calls in fp32, our kernels over per-plane partial
  // sums (two [N, C] arrays) under bf16.
  const NetworkShape bn =
      infer_shapes(parse_model_spec("conv 8 kernel=3 pool=2 bn; dense 2"), 2, 16, 16);
  EXPECT_EQ(build_cuda_schedule(bn).convs[0].bn_partials, -1);
  const CudaSchedule bn16 = build_cuda_schedule(bn, {}, true);
  const int partials = bn16.convs[0].bn_partials;
  ASSERT_GE(partials, 0);
  EXPECT_EQ(bn16.tensors[size_t(partials)].bytes, size_t(2 * 2 * 8) * sizeof(float));
  EXPECT_FALSE(bn16.bf16_tensor[size_t(partials)]);
  EXPECT_TRUE(bn16.bf16_tensor[size_t(bn16.convs[0].bn_out)]);
}

// The CUDA loss kernel's rows with smoothed labels, in the schedule.
TEST(CudaScheduleOnHost, SmoothedLabelsMatchTheReference) {
  const NetworkShape shape =
      infer_shapes(parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dense 5"), 6, 14, 14);
  const Parameters params = Parameters::glorot(shape, 5);
  const auto images = testing::random_vector(size_t(6) * 3 * 14 * 14, 17, 0, 1);
  const std::vector<int32_t> labels = {0, 4, 2, 1, 3, 2};
  const elementwise::LabelSmoothing s{0.3f, true};
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        6, false, 99, 4, nullptr, s);
  const HostRun got = run_schedule(shape, params, images.data(), labels.data(), BatchMeta{6, 0, 0},
                                   false, 99, 4, true, {}, nullptr, s);
  EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss));
  testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4, "smoothed");
}

// Data parallelism on the GPU: slices of a batch (each staged with its global
// row count and first row) give gradients and losses that sum to the whole
// batch's — the kernels' slice arithmetic, dropout included.
TEST(CudaScheduleOnHost, SlicesOfABatchSumToTheWholeBatch) {
  const NetworkShape whole_shape = infer_shapes(
      parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dropout 0.5; dense 2"), 5, 16, 16);
  const Parameters params = Parameters::glorot(whole_shape, 4);
  const auto images = testing::random_vector(size_t(5) * 3 * 16 * 16, 3, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 1, 0, 1};
  const HostRun whole = run_schedule(whole_shape, params, images.data(), labels.data(),
                                     BatchMeta{5, 0, 0}, true, 7, 2, true);
  const NetworkShape part_shape = infer_shapes(
      parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dropout 0.5; dense 2"), 3, 16, 16);
  std::vector<float> grads(whole.grads.values.size(), 0.0f);
  double loss = 0;
  for (const auto& [first, rows] : std::vector<std::pair<int, int>>{{0, 2}, {2, 3}}) {
    const HostRun part =
        run_schedule(part_shape, params, images.data() + size_t(first) * 3 * 16 * 16,
                     labels.data() + first, BatchMeta{rows, 5, first}, true, 7, 2, false);
    for (size_t i = 0; i < grads.size(); ++i) grads[i] += part.grads.values[i];
    loss += part.loss;
  }
  EXPECT_NEAR(loss, whole.loss, 1e-6);
  for (size_t i = 0; i < grads.size(); ++i) ASSERT_NEAR(grads[i], whole.grads.values[i], 1e-5) << i;
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaScheduleOnHost,
                         ::testing::ValuesIn(testing::architectures()), testing::case_name);

// Every architecture without batch norm, and global pooling (which reads the
// fp32 copy of the last map).
std::vector<Case> bf16_architectures() {
  std::vector<Case> cases = testing::architectures();
  for (const Case& c : testing::batch_norm_architectures())
    if (std::string(c.spec).find(" bn") == std::string::npos) cases.push_back(c);
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Architectures, CudaScheduleBf16OnHost,
                         ::testing::ValuesIn(bf16_architectures()), testing::case_name);

// A batch-norm case's inputs: scales and shifts away from 1 and 0.
ScheduleInputs batch_norm_inputs(const Case& c) {
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

// Batch norm and global average pooling through the CUDA schedule: training
// gradients and running statistics, then inference with them.
class CudaScheduleBatchNormOnHost : public ::testing::TestWithParam<Case> {};

TEST_P(CudaScheduleBatchNormOnHost, MatchesTheReferenceInTrainingAndInference) {
  const Case& c = GetParam();
  const ScheduleInputs in = batch_norm_inputs(c);
  const NetworkShape& shape = in.shape;
  const Parameters& params = in.params;
  const std::vector<float>& images = in.images;
  const std::vector<int32_t>& labels = in.labels;
  Buffers want_buffers = Buffers::initial(shape);
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, true, 5, 2, &want_buffers);
  for (bool planned : {true, false}) {
    Buffers buffers = Buffers::initial(shape);
    const HostRun got = run_schedule(shape, params, images.data(), labels.data(),
                                     BatchMeta{c.count, 0, 0}, true, 5, 2, planned, {}, &buffers);
    EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss)) << "planned " << planned;
    testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4,
                                    "planned " + std::to_string(planned));
    for (size_t i = 0; i < buffers.values.size(); ++i)
      EXPECT_NEAR(buffers.values[i], want_buffers.values[i], 1e-6) << i;
    // Inference with the running statistics.
    const HostRun inferred =
        run_schedule(shape, params, images.data(), labels.data(), BatchMeta{c.count, 0, 0}, false,
                     5, 2, planned, {}, &buffers);
    const auto want_inferred = reference::network_forward_backward(
        shape, params, images.data(), labels.data(), c.count, false, 5, 2, &want_buffers);
    for (int i = 0; i < shape.classes() * c.count; ++i)
      EXPECT_NEAR(inferred.probs[size_t(i)], want_inferred.probs[size_t(i)], 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(BatchNorm, CudaScheduleBatchNormOnHost,
                         ::testing::ValuesIn(testing::batch_norm_architectures()),
                         testing::case_name);

// Batch norm under bf16 (our kernels) through the schedule: planned and per
// tensor give the same bits; the loss, probabilities, running statistics and
// gradient directions stay within bf16's reach of the fp32 reference.
TEST_P(CudaScheduleBatchNormOnHost, Bf16StaysNearTheFp32Reference) {
  const Case& c = GetParam();
  const ScheduleInputs in = batch_norm_inputs(c);
  const NetworkShape& shape = in.shape;
  const Parameters& params = in.params;
  const std::vector<float>& images = in.images;
  const std::vector<int32_t>& labels = in.labels;
  Buffers want_buffers = Buffers::initial(shape);
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, true, 5, 2, &want_buffers);
  const BatchMeta meta{c.count, 0, 0};
  Buffers planned_buffers = Buffers::initial(shape), tensor_buffers = Buffers::initial(shape);
  const HostRun planned = run_schedule(shape, params, images.data(), labels.data(), meta, true, 5,
                                       2, true, {}, &planned_buffers, {}, true);
  const HostRun per_tensor = run_schedule(shape, params, images.data(), labels.data(), meta, true,
                                          5, 2, false, {}, &tensor_buffers, {}, true);
  EXPECT_EQ(planned.grads.values, per_tensor.grads.values);
  EXPECT_EQ(planned_buffers.values, tensor_buffers.values);
  EXPECT_NEAR(planned.loss, want.loss, 2e-2 * std::max(1.0, want.loss));
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(planned.probs[size_t(i)], want.probs[size_t(i)], 2e-2);
  for (size_t i = 0; i < planned_buffers.values.size(); ++i)
    EXPECT_NEAR(planned_buffers.values[i], want_buffers.values[i],
                1e-2 * std::max(1.0f, std::abs(want_buffers.values[i])))
        << i;
  expect_same_directions(planned.grads, want.grads);
  // Inference with the running statistics.
  const HostRun inferred = run_schedule(shape, params, images.data(), labels.data(), meta, false, 5,
                                        2, true, {}, &planned_buffers, {}, true);
  const auto want_inferred = reference::network_forward_backward(
      shape, params, images.data(), labels.data(), c.count, false, 5, 2, &want_buffers);
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(inferred.probs[size_t(i)], want_inferred.probs[size_t(i)], 2e-2);
}

TEST(CudaSchedule, DescriptorShapesMatchTheNetworkShapeAndEveryTensorIsUsed) {
  for (const char* spec : {"conv 16 kernel=5 pool=3 pad=same; conv 16 kernel=3 pool=2; dense 2",
                           "conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; conv 64 kernel=3 "
                           "pool=2; dense 64; dropout 0.5; dense 2"}) {
    const NetworkShape shape = infer_shapes(parse_model_spec(spec), 7, 61, 45);
    const CudaSchedule s = build_cuda_schedule(shape);
    ASSERT_EQ(s.convs.size(), shape.convs.size());
    for (size_t k = 0; k < shape.convs.size(); ++k) {
      const ConvShape& cs = shape.convs[k];
      const auto& c = s.convs[k];
      EXPECT_EQ(c.x.c, cs.in_c);
      EXPECT_EQ(c.x.h, cs.in_h);
      EXPECT_EQ(c.y.c, cs.out_c);
      EXPECT_EQ(c.y.h, cs.conv_h);
      EXPECT_EQ(c.y.w, cs.conv_w);
      EXPECT_EQ(c.pooled_dims.h, cs.out_h);
      EXPECT_EQ(c.pooled_dims.w, cs.out_w);
      EXPECT_EQ(c.y.stride_n(), int64_t(cs.out_c) * cs.conv_h * cs.conv_w);
    }
    EXPECT_EQ(s.denses.front().in, s.convs.back().pooled_dims.stride_n())
        << "NCHW pooled map is the dense input without a copy";
    for (const auto& t : s.tensors) {
      EXPECT_LE(t.first_use, t.last_use) << t.name << " is never used";
      EXPECT_GT(t.bytes, 0u) << t.name;
    }
    EXPECT_NO_THROW(validate_plan(s.tensors, plan_memory(s.tensors)));
  }
}

TEST(CudaSchedule, GemmMappingsEqualTheReferenceDenseLayer) {
  const int n = 5, in = 7, out = 3;
  const auto x = testing::random_vector(n * in, 1), wt = testing::random_vector(out * in, 2),
             dy = testing::random_vector(n * out, 3);
  std::vector<float> zero_bias(out, 0), y(n * out), y_ref(n * out), dx(n * in), dx_ref(n * in),
      dw(out * in), dw_ref(out * in), db_ref(out);
  host_gemm(dense_forward_gemm(n, in, out), wt.data(), x.data(), y.data());
  reference::dense_forward(x.data(), wt.data(), zero_bias.data(), y_ref.data(), n, in, out);
  host_gemm(dense_backward_data_gemm(n, in, out), wt.data(), dy.data(), dx.data());
  host_gemm(dense_backward_weight_gemm(n, in, out), x.data(), dy.data(), dw.data());
  reference::dense_backward(x.data(), wt.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                            db_ref.data(), n, in, out);
  for (int i = 0; i < n * out; ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-5);
  for (int i = 0; i < n * in; ++i) EXPECT_NEAR(dx[i], dx_ref[i], 1e-5);
  for (int i = 0; i < out * in; ++i) EXPECT_NEAR(dw[i], dw_ref[i], 1e-5);
  // cuBLAS's constraints: leading dimensions at least the rows of each stored matrix.
  for (const GemmCall& g : {dense_forward_gemm(n, in, out), dense_backward_data_gemm(n, in, out),
                            dense_backward_weight_gemm(n, in, out)}) {
    EXPECT_GE(g.lda, std::max(1, g.trans_a ? g.k : g.m));
    EXPECT_GE(g.ldb, std::max(1, g.trans_b ? g.n : g.k));
    EXPECT_GE(g.ldc, std::max(1, g.m));
  }
}

TEST(CudaSchedule, AlgorithmChoiceRespectsBudgetDeterminismAndTiming) {
  // Heuristics: preference order, skipping failures, over-budget and non-deterministic.
  std::vector<AlgorithmCandidate> h = {{6, true, 900 << 20, true, -1},
                                       {1, false, 0, true, -1},
                                       {2, true, 10, false, -1},
                                       {0, true, 0, true, -1}};
  EXPECT_EQ(choose_algorithm(h, 512 << 20, true), 0);
  EXPECT_EQ(choose_algorithm(h, 512 << 20, false), 2);
  EXPECT_EQ(choose_algorithm(h, size_t(1) << 30, true), 6);
  // Timed: the fastest acceptable one.
  std::vector<AlgorithmCandidate> t = {
      {0, true, 0, true, 3.0f}, {1, true, 0, true, 1.0f}, {2, true, 0, false, 0.5f}};
  EXPECT_EQ(choose_algorithm(t, 0, true), 1);
  EXPECT_EQ(choose_algorithm({}, 0, true), -1);
}

TEST(CudaSchedule, LargestBatchThatFitsIsTheBoundary) {
  const ModelSpec spec = default_model_spec();
  const size_t budget = size_t(256) << 20, persistent = size_t(40) << 20;
  const int b = largest_batch_that_fits(spec, 200, 200, budget, persistent);
  ASSERT_GT(b, 0);
  auto need = [&](int batch) {
    return plan_memory(build_cuda_schedule(infer_shapes(spec, batch, 200, 200)).tensors)
               .arena_bytes +
           persistent;
  };
  EXPECT_LE(need(b), budget);
  EXPECT_GT(need(b + 1), budget);
  EXPECT_EQ(largest_batch_that_fits(spec, 200, 200, persistent, persistent), 0);
}

// cuDNN's descriptors count elements in 32 bits: the paper's network at
// 200x200 has 32 x 198 x 198 = 1,254,528 elements per image in conv1's
// output, so batch 1711 is the last within 2^31 - 1 (the H200 run of batch
// 1800 failed inside cudnnSetTensor4dDescriptor before this check).
TEST(CudaSchedule, LargestTensorAndTheBatchWithinCudnnsElementLimit) {
  const ModelSpec spec = default_model_spec();
  const LargestTensor at1800 =
      largest_tensor(build_cuda_schedule(infer_shapes(spec, 1800, 200, 200)));
  EXPECT_EQ(at1800.elements, int64_t(1800) * 32 * 198 * 198);
  EXPECT_EQ(at1800.name, "conv1's output");
  EXPECT_GT(at1800.elements, kCudnnMaxElements);
  const int b = largest_batch_within_element_limit(spec, 200, 200);
  EXPECT_EQ(b, 1711);
  EXPECT_LE(largest_tensor(build_cuda_schedule(infer_shapes(spec, b, 200, 200))).elements,
            kCudnnMaxElements);
  EXPECT_GT(largest_tensor(build_cuda_schedule(infer_shapes(spec, b + 1, 200, 200))).elements,
            kCudnnMaxElements);
}

}  // namespace
}  // namespace histocnn::cuda
