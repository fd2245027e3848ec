#include "backends/cuda/cuda_schedule.h"

#include <algorithm>
#include <climits>
#include <stdexcept>

#include "backends/cuda/conv_pool_kernels.h"
#include "backends/cuda/pooled_dgrad_kernels.h"
#include "backends/cuda/pooled_wgrad_kernels.h"
#include "backends/cuda/wgrad_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {

Dims4 conv_output_dims(const Dims4& x, int filters, int kernel, int pad) {
  return {x.n, filters, x.h + 2 * pad - kernel + 1, x.w + 2 * pad - kernel + 1};
}

Dims4 pool_output_dims(const Dims4& x, int window) {
  return {x.n, x.c, x.h / window, x.w / window};
}

// Row-major X[N,in] is column-major X^T [in,N] (ld = in); W[out,in] is W^T
// [in,out] (ld = in); Y[N,out] is Y^T [out,N] (ld = out).
GemmCall dense_forward_gemm(int batch, int in, int out) {
  // Y^T[out,N] = (W^T)^T[out,in] X^T[in,N]
  return {true,
          false,
          out,
          batch,
          in,
          in,
          in,
          out,
          GemmCall::kWeight,
          GemmCall::kInput,
          GemmCall::kOutput};
}

GemmCall dense_backward_data_gemm(int batch, int in, int out) {
  // dX^T[in,N] = W^T[in,out] dY^T[out,N]
  return {false,
          false,
          in,
          batch,
          out,
          in,
          out,
          in,
          GemmCall::kWeight,
          GemmCall::kOutputGrad,
          GemmCall::kInputGrad};
}

GemmCall dense_backward_weight_gemm(int batch, int in, int out) {
  // dW^T[in,out] = X^T[in,N] (dY^T)^T[N,out]
  return {false,
          true,
          in,
          out,
          batch,
          in,
          out,
          in,
          GemmCall::kInput,
          GemmCall::kOutputGrad,
          GemmCall::kWeightGrad};
}

void host_gemm(const GemmCall& g, const float* a, const float* b, float* c, float beta) {
  // Column-major: element (i, j) of a matrix with leading dimension ld is [i + j * ld].
  for (int j = 0; j < g.n; ++j)
    for (int i = 0; i < g.m; ++i) {
      double sum = 0;
      for (int p = 0; p < g.k; ++p) {
        const float av = g.trans_a ? a[p + i * g.lda] : a[i + p * g.lda];
        const float bv = g.trans_b ? b[j + p * g.ldb] : b[p + j * g.ldb];
        sum += double(av) * bv;
      }
      float& out = c[i + j * g.ldc];
      out = float(sum) + (beta != 0 ? beta * out : 0.0f);
    }
}

std::string ScheduledOp::name() const {
  static const char* names[] = {"input",       "conv_fwd",      "pool_fwd",        "dense_fwd",
                                "dense_act",   "loss",          "dense_act_bwd",   "dense_bwd_w",
                                "dense_bwd_d", "pool_relu_bwd", "conv_bwd_filter", "conv_bwd_data",
                                "bn_fwd",      "bn_bwd",        "gap_fwd",         "gap_bwd",
                                "to_float",    "to_bf16",       "conv_pool_fwd"};
  return std::string(names[int(kind)]) + "[" + std::to_string(layer) + "]";
}

namespace {

// Builds a CudaSchedule in execution order: every tensor is made where it is
// first needed (the gradients in backward order, so in-place links point
// back), and each operation lists the tensors it touches.
class ScheduleBuilder {
 public:
  ScheduleBuilder(const NetworkShape& shape, const std::vector<ConvWorkspaces>& workspaces,
                  MapFormat format, std::vector<ConvRoutes> routes)
      : shape_(shape),
        workspaces_(workspaces),
        bf16_(format.bf16),
        channels_last_(format.channels_last),
        routes_(std::move(routes)) {
    s_.bf16 = bf16_;
    s_.channels_last = channels_last_;
  }

  CudaSchedule build() {
    int src = add_input();
    for (size_t k = 0; k < shape_.convs.size(); ++k) src = add_conv_forward(k, src);
    src = add_features(src);
    for (size_t j = 0; j < shape_.denses.size(); ++j) src = add_dense_forward(j, src);
    add_loss();
    for (size_t j = s_.denses.size(); j-- > 0;) add_dense_backward(j);
    if (shape_.global_pool)
      op(OpKind::kGlobalPoolBackward, 0, {s_.gap_out, s_.features, s_.d_gap, make_d_features()});
    if (bf16_) {
      s_.convs.back().d_pooled = map_tensor(last_d_pooled(), features());
      op(OpKind::kToBf16, last_conv(), {s_.d_features, s_.convs.back().d_pooled});
    }
    for (size_t k = s_.convs.size(); k-- > 0;) add_conv_backward(k);
    set_lifetimes();
    return std::move(s_);
  }

 private:
  int bytes_tensor(const std::string& name, size_t bytes) {
    if (!bytes) return -1;
    s_.tensors.push_back({name, bytes, INT_MAX, -1});
    s_.bf16_tensor.push_back(false);
    return int(s_.tensors.size() - 1);
  }
  int tensor(const std::string& name, int64_t floats) {
    return bytes_tensor(name, size_t(floats) * sizeof(float));
  }
  // The conv blocks' maps and their gradients: bf16 under --precision bf16.
  int map_tensor(const std::string& name, int64_t elements) {
    if (!bf16_) return tensor(name, elements);
    const int id = bytes_tensor(name, size_t(elements) * 2);
    s_.bf16_tensor[size_t(id)] = true;
    return id;
  }
  void op(OpKind kind, int layer, std::vector<int> tensors) {
    tensors.erase(std::remove(tensors.begin(), tensors.end(), -1), tensors.end());
    s_.ops.push_back({kind, layer, std::move(tensors)});
  }
  ConvWorkspaces workspaces(size_t k) const {
    return workspaces_.empty() ? ConvWorkspaces{} : workspaces_[k];
  }
  int batch() const { return shape_.batch; }
  int last_conv() const { return int(s_.convs.size()) - 1; }
  int64_t features() const { return s_.convs.back().pooled_dims.count(); }
  std::string last_d_pooled() const {
    return "conv" + std::to_string(s_.convs.size()) + ".d_pooled";
  }

  int add_input() {
    x_ = {batch(), shape_.channels, shape_.height, shape_.width};
    s_.input = tensor("input", x_.count());
    s_.conv_input = channels_last_ ? map_tensor("input.channels_last", x_.count())
                    : bf16_        ? map_tensor("input.bf16", x_.count())
                                   : s_.input;
    op(OpKind::kInput, 0, {s_.input, s_.conv_input != s_.input ? s_.conv_input : -1});
    return s_.conv_input;
  }

  // Convolution (+ batch norm) + pooling; returns the block's output tensor.
  int add_conv_forward(size_t k, int src) {
    const ConvShape& cs = shape_.convs[k];
    const std::string tag = "conv" + std::to_string(k + 1);
    CudaSchedule::ConvTensors c;
    c.x = x_;
    c.y = conv_output_dims(x_, cs.out_c, cs.kernel, cs.pad);
    c.pooled_dims = cs.pool > 1 ? pool_output_dims(c.y, cs.pool) : c.y;
    if (c.y.h != cs.conv_h || c.y.w != cs.conv_w || c.pooled_dims.h != cs.out_h ||
        c.pooled_dims.w != cs.out_w)
      throw std::logic_error("build_cuda_schedule: " + tag + " shape disagrees with infer_shapes");
    c.src = src;
    c.pool = cs.pool;
    c.channels_last = channels_last_;
    c.pooled_channels_last = channels_last_ && k + 1 < shape_.convs.size();
    c.batch_norm = cs.batch_norm;
    if (k < routes_.size()) c.routes = routes_[k];
    if (c.routes.fused_forward) return add_conv_pool_forward(c, tag);
    c.conv_out = map_tensor(tag + ".out", c.y.count());
    c.ws_forward = bytes_tensor(tag + ".ws_fwd", workspaces(k).forward);
    op(OpKind::kConvForward, int(k), {c.src, c.conv_out, c.ws_forward});
    c.act = c.conv_out;
    if (c.batch_norm) {
      c.bn_out = map_tensor(tag + ".bn_out", c.y.count());
      // bf16 and channels last: our kernels' partial sums (channels-first
      // fp32 keeps cuDNN's calls).
      if (bf16_ || channels_last_)
        c.bn_partials =
            tensor(tag + ".bn_partials",
                   2 * int64_t(channel_sum_rows(batch(), c.y.layout(channels_last_))) * c.y.c);
      op(OpKind::kBatchNormForward, int(k), {c.conv_out, c.bn_out, c.bn_partials});
      c.act = c.bn_out;
    }
    c.pooled = cs.pool > 1 ? map_tensor(tag + ".pooled", c.pooled_dims.count()) : c.act;
    if (cs.pool > 1) {
      c.argmax = bytes_tensor(tag + ".argmax", size_t(c.pooled_dims.count()));
      op(OpKind::kPoolForward, int(k), {c.act, c.pooled, c.argmax});
    }
    s_.convs.push_back(c);
    x_ = c.pooled_dims;
    return c.pooled;
  }

  // The fused forward: straight from the input to the pooled map and argmax.
  int add_conv_pool_forward(CudaSchedule::ConvTensors& c, const std::string& tag) {
    c.pooled = map_tensor(tag + ".pooled", c.pooled_dims.count());
    c.argmax = bytes_tensor(tag + ".argmax", size_t(c.pooled_dims.count()));
    op(OpKind::kConvPoolForward, int(s_.convs.size()), {c.src, c.pooled, c.argmax});
    s_.convs.push_back(c);
    x_ = c.pooled_dims;
    return c.pooled;
  }

  // Dense layers read the last pooled map as [N, C*H*W]: NCHW is already that.
  // Or its channel means, [N, C]. Under bf16 they read an fp32 copy of it.
  int add_features(int src) {
    s_.features = src;
    if (bf16_) {
      s_.features = tensor("features", features());
      op(OpKind::kToFloat, last_conv(), {src, s_.features});
      src = s_.features;
    }
    if (!shape_.global_pool) return src;
    s_.gap_out = tensor("gap", int64_t(batch()) * s_.convs.back().pooled_dims.c);
    op(OpKind::kGlobalPoolForward, 0, {s_.features, s_.gap_out});
    return s_.gap_out;
  }

  int add_dense_forward(size_t j, int src) {
    const DenseShape& ds = shape_.denses[j];
    CudaSchedule::DenseTensors d;
    d.in = ds.in;
    d.outputs = ds.out;
    d.src = src;
    d.out = tensor("fc" + std::to_string(j + 1) + ".out", int64_t(batch()) * ds.out);
    op(OpKind::kDenseForward, int(j), {d.src, d.out});
    op(OpKind::kDenseActivation, int(j), {d.out});
    s_.denses.push_back(d);
    return d.out;
  }

  void add_loss() {
    s_.logits = s_.denses.back().out;
    s_.d_logits = tensor("d_logits", int64_t(batch()) * shape_.classes());
    s_.denses.back().d_out = s_.d_logits;
    s_.loss_op = int(s_.ops.size());
    op(OpKind::kLoss, 0, {s_.logits, s_.d_logits});
  }

  // The gradient reaching the conv part: the last d_pooled, or under bf16 its
  // fp32 counterpart, rounded into d_pooled after the dense part.
  int make_d_features() {
    s_.d_features =
        bf16_ ? tensor("d_features", features()) : map_tensor(last_d_pooled(), features());
    if (!bf16_) s_.convs.back().d_pooled = s_.d_features;
    return s_.d_features;
  }

  void add_dense_backward(size_t j) {
    CudaSchedule::DenseTensors& d = s_.denses[j];
    if (j > 0) {
      d.d_src = tensor("fc" + std::to_string(j) + ".d_out", int64_t(batch()) * d.in);
      s_.denses[j - 1].d_out = d.d_src;
    } else if (shape_.global_pool) {
      s_.d_gap = tensor("d_gap", int64_t(batch()) * s_.convs.back().pooled_dims.c);
      d.d_src = s_.d_gap;
    } else {
      d.d_src = make_d_features();
    }
    if (shape_.denses[j].relu) op(OpKind::kDenseActivationBackward, int(j), {d.d_out, d.out});
    op(OpKind::kDenseBackwardWeights, int(j), {d.src, d.d_out});
    op(OpKind::kDenseBackwardData, int(j), {d.d_out, d.d_src});
  }

  // Pool + ReLU backward (with the bias gradient's partial sums), batch norm
  // backward, the weight gradient, and the data gradient into the previous
  // block's d_pooled (made here).
  void add_conv_backward(size_t k) {
    CudaSchedule::ConvTensors& c = s_.convs[k];
    const ConvShape& cs = shape_.convs[k];
    const std::string tag = "conv" + std::to_string(k + 1);
    const ConvWorkspaces ws = workspaces(k);
    // pool = 1: ReLU' in place on d_pooled (which is then d_act). conv1 from
    // the pooled gradient runs no pool backward at all: the weight-gradient
    // kernel sums the bias gradient from the same terms, and nothing reads a
    // d_act. A later block's data gradient still reads it, unless it too
    // comes from the pooled gradient: then the pool backward writes only the
    // bias sums.
    const bool pooled_wgrad = c.routes.pooled_weight_gradient;
    const bool pooled_dgrad = c.routes.pooled_data_gradient && k > 0;
    const bool no_pool_backward = pooled_wgrad && k == 0;
    const bool no_d_act = no_pool_backward || (pooled_wgrad && pooled_dgrad);
    c.d_act = no_d_act      ? -1
              : cs.pool > 1 ? map_tensor(tag + (c.batch_norm ? ".d_bn_out" : ".d_out"), c.y.count())
                            : c.d_pooled;
    if (!c.batch_norm && !no_pool_backward)
      c.bias_partials =
          tensor(tag + ".bias_partials", int64_t(bias_partial_rows(c.pool_maps())) * c.y.c);
    // With a pool, ReLU' comes from the argmax bytes (core/argmax_byte.h):
    // no backward op reads a pooled map, which dies once the next block's
    // forward and weight gradient have read it. Without one, the ReLU's
    // output (c.pooled is c.act) is read here.
    if (!no_pool_backward) {
      std::vector<int> pool_touches = {c.d_pooled, c.argmax, c.bias_partials};
      if (cs.pool == 1) pool_touches.push_back(c.pooled);
      if (c.d_act >= 0) pool_touches.push_back(c.d_act);
      op(OpKind::kPoolReluBackward, int(k), pool_touches);
    }
    if (c.batch_norm) {
      c.d_conv_out = map_tensor(tag + ".d_out", c.y.count());
      op(OpKind::kBatchNormBackward, int(k), {c.conv_out, c.d_act, c.d_conv_out, c.bn_partials});
    } else {
      c.d_conv_out = c.d_act;
    }
    c.ws_backward_filter = bytes_tensor(tag + ".ws_bwd_filter", ws.backward_filter);
    // From the pooled gradient (wgrad_kernels.h, pooled_wgrad_kernels.h),
    // the pooled gradient and argmax live until the weight gradient has run,
    // which reads no d_conv_out.
    std::vector<int> filter_reads = {c.src, c.ws_backward_filter};
    if (pooled_wgrad)
      filter_reads.insert(filter_reads.end(), {c.d_pooled, c.argmax});
    else
      filter_reads.push_back(c.d_conv_out);
    op(OpKind::kConvBackwardFilter, int(k), filter_reads);
    if (k == 0) return;
    CudaSchedule::ConvTensors& prev = s_.convs[k - 1];
    prev.d_pooled = map_tensor("conv" + std::to_string(k) + ".d_pooled", prev.pooled_dims.count());
    if (pooled_dgrad) {  // pooled_dgrad_kernels.h: no workspace, no d_conv_out
      op(OpKind::kConvBackwardData, int(k), {c.d_pooled, c.argmax, prev.d_pooled});
      return;
    }
    c.ws_backward_data = bytes_tensor(tag + ".ws_bwd_data", ws.backward_data);
    op(OpKind::kConvBackwardData, int(k), {c.d_conv_out, prev.d_pooled, c.ws_backward_data});
  }

  // Every tensor lives from the first to the last operation touching it; the
  // loss overwrites the logits with their gradient row by row.
  void set_lifetimes() {
    for (size_t i = 0; i < s_.ops.size(); ++i)
      for (int t : s_.ops[i].tensors) {
        s_.tensors[size_t(t)].first_use = std::min(s_.tensors[size_t(t)].first_use, int(i));
        s_.tensors[size_t(t)].last_use = std::max(s_.tensors[size_t(t)].last_use, int(i));
      }
    if (s_.tensors[size_t(s_.logits)].last_use == s_.loss_op && s_.logits < s_.d_logits)
      s_.tensors[size_t(s_.d_logits)].in_place_of = s_.logits;
  }

  const NetworkShape& shape_;
  const std::vector<ConvWorkspaces>& workspaces_;
  const bool bf16_, channels_last_;
  const std::vector<ConvRoutes> routes_;
  CudaSchedule s_;
  Dims4 x_{};  // the next block's input
};

}  // namespace

std::string channels_last_unsupported(const NetworkShape& shape) {
  if (shape.convs.empty()) return "the network has no convolution";
  if (shape.convs.back().pool < 2)
    return "the last conv block has no pool (its pool turns the map back into the dense "
           "part's channels-first order); drop --channels-last";
  return "";
}

std::string conv1_routes_unsupported(const NetworkShape& shape, const ConvRoutes& routes) {
  if (routes.pooled_data_gradient)
    return "conv1 has no data gradient (nothing before it needs one)";
  if (!routes.fused_forward && !routes.pooled_weight_gradient) return "";
  if (shape.convs.empty()) return "the network has no conv block";
  const ConvShape& c = shape.convs.front();
  if (c.batch_norm || c.pool < 2)
    return "conv1's own routes need a max pool with the bias and ReLU after it (no batch norm)";
  if (routes.fused_forward && !conv_pool_supported(c.in_c, c.kernel, c.pool))
    return "the fused forward kernel was not compiled for conv1's shape (3 input channels, "
           "kernel 3 or 5, 2x2 pool)";
  if (routes.pooled_weight_gradient && (!small_wgrad_supported(c.in_c, c.kernel) || c.pool > 8))
    return "the pooled weight-gradient kernel was not compiled for conv1's shape (3 input "
           "channels, kernel 3 or 5, pools up to 8x8)";
  return "";
}

std::string conv_routes_unsupported(const NetworkShape& shape,
                                    const std::vector<ConvRoutes>& routes) {
  if (routes.size() > shape.convs.size()) return "more conv routes than conv blocks";
  for (size_t k = 0; k < routes.size(); ++k) {
    if (k == 0) {
      const std::string why = conv1_routes_unsupported(shape, routes[0]);
      if (!why.empty()) return why;
      continue;
    }
    const ConvShape& c = shape.convs[k];
    const std::string tag = "conv" + std::to_string(k + 1);
    if (routes[k].fused_forward) return tag + ": the fused forward kernel is conv1's only";
    if (routes[k].pooled_weight_gradient &&
        (c.batch_norm || !pooled_wgrad_supported(c.kernel, c.pool)))
      return tag +
             "'s weight gradient from the pooled gradient needs a max pool (2x2 to 8x8) "
             "with the bias and ReLU after it (no batch norm) and kernel 3 or 5";
    if (routes[k].pooled_data_gradient &&
        (c.batch_norm || !pooled_dgrad_supported(c.kernel, c.pad, c.pool)))
      return tag +
             "'s data gradient from the pooled gradient needs a 2x2 max pool with the bias "
             "and ReLU after it (no batch norm), kernel 3 or 5, 'valid' or 'same' padding";
  }
  return "";
}

CudaSchedule build_cuda_schedule(const NetworkShape& shape,
                                 const std::vector<ConvWorkspaces>& workspaces, MapFormat format,
                                 std::vector<ConvRoutes> routes) {
  if (!workspaces.empty() && workspaces.size() != shape.convs.size())
    throw std::invalid_argument("build_cuda_schedule: one workspace entry per conv block");
  if (format.channels_last) {
    const std::string why = channels_last_unsupported(shape);
    require(why.empty(), "--channels-last: " + why);
  }
  const std::string refused = conv_routes_unsupported(shape, routes);
  if (!refused.empty()) throw std::logic_error("build_cuda_schedule: " + refused);
  return ScheduleBuilder(shape, workspaces, format, std::move(routes)).build();
}

std::string fastest_route(const std::vector<std::pair<std::string, float>>& times,
                          const std::string& forced, const std::string& what) {
  std::string best;
  float best_ms = -1;
  for (const auto& [name, ms] : times) {
    if (ms < 0) continue;
    if (name == forced) return name;
    if (best_ms < 0 || ms < best_ms) best = name, best_ms = ms;
  }
  require(forced.empty(), what + ": the route '" + forced +
                              "' does not apply to this network here (" +
                              (best.empty() ? "none" : best) + " does)");
  return best;
}

int choose_algorithm(const std::vector<AlgorithmCandidate>& candidates, size_t workspace_limit,
                     bool deterministic) {
  int best = -1;
  float best_ms = 0;
  for (const auto& c : candidates) {
    if (!c.ok || c.workspace > workspace_limit || (deterministic && !c.deterministic)) continue;
    if (c.milliseconds < 0) return c.algorithm;  // heuristics: preference order
    if (best < 0 || c.milliseconds < best_ms) {
      best = c.algorithm;
      best_ms = c.milliseconds;
    }
  }
  return best;
}

size_t planned_step_bytes(const ModelSpec& spec, int batch, int height, int width,
                          MapFormat format) {
  const NetworkShape shape = infer_shapes(spec, batch, height, width);
  return plan_memory(build_cuda_schedule(shape, {}, format).tensors).arena_bytes +
         persistent_bytes(shape, format);
}

int largest_batch_that_fits(const ModelSpec& spec, int height, int width, size_t budget,
                            MapFormat format) {
  auto need = [&](int batch) { return planned_step_bytes(spec, batch, height, width, format); };
  if (need(1) > budget) return 0;
  int fits = 1, fails = 2;
  while (need(fails) <= budget) {
    fits = fails;
    if (fails >= (1 << 20)) return fits;
    fails *= 2;
  }
  while (fails - fits > 1) {
    const int mid = fits + (fails - fits) / 2;
    (need(mid) <= budget ? fits : fails) = mid;
  }
  return fits;
}

LargestTensor largest_tensor(const CudaSchedule& schedule) {
  LargestTensor largest;
  auto consider = [&](const Dims4& d, const std::string& name) {
    if (d.count() > largest.elements) largest = {d.count(), name};
  };
  for (size_t k = 0; k < schedule.convs.size(); ++k) {
    const auto& c = schedule.convs[k];
    const std::string tag = "conv" + std::to_string(k + 1);
    consider(c.x, tag + "'s input");
    consider(c.y, tag + "'s output");
    consider(c.pooled_dims, tag + "'s pooled output");
  }
  return largest;
}

int largest_batch_within_element_limit(const ModelSpec& spec, int height, int width) {
  const int64_t per_image =
      largest_tensor(build_cuda_schedule(infer_shapes(spec, 1, height, width))).elements;
  return int(std::min<int64_t>(kCudnnMaxElements / std::max<int64_t>(per_image, 1), INT_MAX));
}

}  // namespace histocnn::cuda
