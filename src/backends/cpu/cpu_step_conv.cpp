// One convolution block of the CPU step on oneDNN's primitives (see
// cpu_step.h for the data flow): conv (+ batch norm) + ReLU + max-pool, its
// buffers, and its forward and backward operations. The first block may run
// on our fused kernels instead (cpu_step_fused.cpp); a block whose output
// exceeds the slice budget runs in micro-batches (cpu_step_sliced.cpp).
//
// The order in which buffers are made is the order the memory plan sees
// them: keep it when moving code between these functions.
#include <omp.h>

#include "backends/cpu/cpu_step.h"

namespace histocnn::cpu {

// Winograd F(4x4, 3x3) does a 3x3 convolution in 2.25x fewer multiply-adds
// than the direct one (oneDNN's jit_wino_4x3: fp32, AVX-512, 3x3, stride 1,
// channels in blocks of 16); measured 1.3-2.8x faster on conv2 and conv3 at
// 200 px (docs/results/cpu-winograd.md). It is asked for where it pays
// (winograd_pays); where oneDNN has none for a shape or precision it answers
// "unimplemented" and the direct convolution runs.
template <class MakePd>
static auto first_implemented(bool winograd, const MakePd& make_pd) {
  if (winograd) {
    try {
      return make_pd(dnnl::algorithm::convolution_winograd);
    } catch (const dnnl::error& e) {
      if (e.status != dnnl_unimplemented) throw;
    }
  }
  return make_pd(dnnl::algorithm::convolution_direct);
}

static Mem::desc canonical_weights_md(const ConvShape& s) {
  return Mem::desc({s.out_c, s.in_c, s.kernel, s.kernel}, dt::f32, tag::oihw);
}

static std::string block_tag(size_t i) {
  return "conv" + std::to_string(i + 1);
}

Mem::desc CpuTrainingStep::whole_batch(const ConvBlock& c, const Mem::desc& md) const {
  return c.sliced() ? with_rows(md, shape_.batch) : md;
}

void CpuTrainingStep::build_conv_primitives(ConvBlock& c, const Mem::desc& src_md, int mb) {
  const ConvShape& s = c.s;
  const Mem::dims w_dims = {s.out_c, s.in_c, s.kernel, s.kernel};
  const Mem::dims conv_dims = dims4(mb, s.out_c, s.conv_h, s.conv_w);
  const Mem::dims strides = {1, 1}, pad = {s.pad, s.pad};
  const auto bias_md = Mem::desc({s.out_c}, dt::f32, tag::x);  // fp32 in both precisions
  const bool bn = s.batch_norm;  // then no bias, and the ReLU follows the normalisation
  const dnnl::primitive_attr attr = user_scratchpad(/*relu=*/!bn);
  c.fwd_pd = first_implemented(winograd(s), [&](dnnl::algorithm alg) {
    auto desc =
        bn ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_md,
                                             act_any(w_dims), act_any(conv_dims), strides, pad, pad)
           : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_md,
                                             act_any(w_dims), bias_md, act_any(conv_dims), strides,
                                             pad, pad);
    return dnnl::convolution_forward::primitive_desc(desc, attr, engine_);
  });
  // Weight gradients in fp32 (oneDNN accumulates bf16 products in fp32).
  const auto dw_md = Mem::desc(w_dims, dt::f32, tag::any);
  c.bwd_w_pd = first_implemented(winograd_weights(s), [&](dnnl::algorithm alg) {
    auto desc =
        bn ? dnnl::convolution_backward_weights::desc(alg, c.fwd_pd.src_desc(), dw_md,
                                                      c.fwd_pd.dst_desc(), strides, pad, pad)
           : dnnl::convolution_backward_weights::desc(alg, c.fwd_pd.src_desc(), dw_md, bias_md,
                                                      c.fwd_pd.dst_desc(), strides, pad, pad);
    return dnnl::convolution_backward_weights::primitive_desc(desc, user_scratchpad(), engine_,
                                                              c.fwd_pd);
  });
  if (s.pool > 1) {
    // The pool reads the conv output's layout (batch norm keeps it).
    const Mem::dims pooled_dims = dims4(mb, s.out_c, s.out_h, s.out_w);
    const Mem::dims kernel = {s.pool, s.pool}, zero = {0, 0};
    // A trailing row/column that does not fill a window is dropped (floor), as
    // in Keras and PyTorch.
    auto pool_desc = dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training,
                                                 dnnl::algorithm::pooling_max, c.fwd_pd.dst_desc(),
                                                 act_any(pooled_dims), kernel, kernel, zero, zero);
    c.pool_pd = dnnl::pooling_forward::primitive_desc(pool_desc, user_scratchpad(), engine_);
    auto pool_bwd_desc =
        dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, c.fwd_pd.dst_desc(),
                                     c.pool_pd.dst_desc(), kernel, kernel, zero, zero);
    c.pool_bwd_pd = dnnl::pooling_backward::primitive_desc(pool_bwd_desc, user_scratchpad(),
                                                           engine_, c.pool_pd);
  }
}

// Micro-batch the block when its whole-batch conv output exceeds the budget
// (batch norm needs the whole batch's statistics: never sliced); then its
// primitives for that many images.
void CpuTrainingStep::build_conv_slicing(ConvBlock& c, size_t i, const Mem& src_in) {
  const ConvShape& s = c.s;
  const int n = shape_.batch;
  // The first block lets oneDNN choose the input layout (the user's fp32 NCHW
  // batch is reordered into it); later blocks take the previous block's exact layout.
  auto src_md_for = [&](int mb) {
    return i == 0 ? act_any(dims4(mb, s.in_c, s.in_h, s.in_w))
                  : (mb == n ? src_in.get_desc() : with_rows(src_in.get_desc(), mb));
  };
  const size_t out_row_bytes =
      size_t(s.out_c) * s.conv_h * s.conv_w * (act_dt_ == dt::bf16 ? 2 : 4);
  int mb = n;
  if (!s.batch_norm && s.pool > 1 && options_.cpu_slice_bytes > 0 &&
      out_row_bytes * size_t(n) > options_.cpu_slice_bytes)
    mb = slice_rows(n, out_row_bytes, options_.cpu_slice_bytes);
  if (mb < n && !src_md_for(mb)) mb = n;
  build_conv_primitives(c, src_md_for(mb), mb);
  if (mb < n && (!with_rows(c.fwd_pd.src_desc(), n) || !with_rows(c.pool_pd.dst_desc(), n) ||
                 !with_rows(c.pool_pd.workspace_desc(), n))) {
    mb = n;  // a layout oneDNN chose for the slice cannot be sliced: the whole batch
    build_conv_primitives(c, src_md_for(mb), mb);
  }
  c.rows = mb;
  c.slices = n / mb;
}

// Weights: canonical OIHW views into the flat parameter and gradient vectors
// (and the layout the forward convolution wants, when it is another); the
// bias likewise, unless batch norm replaces it.
void CpuTrainingStep::bind_conv_parameters(ConvBlock& c, size_t i) {
  const auto& w_info = params_.info(block_tag(i) + ".weight");
  const Mem::desc w_canon_md = canonical_weights_md(c.s);
  c.w_canon = view(w_canon_md, params_.data(w_info));
  c.w_fwd = c.fwd_pd.weights_desc() == w_canon_md ? c.w_canon : persistent(c.fwd_pd.weights_desc());
  c.dw_canon = view(w_canon_md, grads_.data(w_info));
  if (c.s.batch_norm) return;
  const auto bias_md = Mem::desc({c.s.out_c}, dt::f32, tag::x);
  const auto& b_info = params_.info(block_tag(i) + ".bias");
  c.b = view(bias_md, params_.data(b_info));
  c.db = view(bias_md, grads_.data(b_info));
  c.act = c.conv_out;
}

// Batch norm over the conv output: scale/shift are bnK.weight/bias, the
// batch statistics land in mean/variance (kept for backward); the ReLU runs
// in place on its output.
void CpuTrainingStep::build_batch_norm(ConvBlock& c, size_t i) {
  const std::string tag = block_tag(i), bn_name = "bn" + std::to_string(i + 1);
  const auto& g_info = params_.info(bn_name + ".weight");
  const auto& b_info = params_.info(bn_name + ".bias");
  auto channel_md = Mem::desc({c.s.out_c}, dt::f32, tag::x);
  c.gamma = view(channel_md, params_.data(g_info));
  c.beta = view(channel_md, params_.data(b_info));
  c.dgamma = view(channel_md, grads_.data(g_info));
  c.dbeta = view(channel_md, grads_.data(b_info));
  c.running_mean = view(channel_md, bn_buffers_.running_mean(int(i)));
  c.running_var = view(channel_md, bn_buffers_.running_var(int(i)));
  const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
  c.bn_fwd_pd = dnnl::batch_normalization_forward::primitive_desc(
      dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training,
                                              c.conv_out.get_desc(), kBatchNormEpsilon, flags),
      user_scratchpad(), engine_);
  c.bn_infer_pd = dnnl::batch_normalization_forward::primitive_desc(
      dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_inference,
                                              c.conv_out.get_desc(), kBatchNormEpsilon,
                                              flags | dnnl::normalization_flags::use_global_stats),
      user_scratchpad(), engine_);
  c.bn_out = make(c.bn_fwd_pd.dst_desc(), tag + ".bn_out");
  c.mean = persistent(c.bn_fwd_pd.mean_desc());
  c.variance = persistent(c.bn_fwd_pd.variance_desc());
  c.bn_bwd_pd = dnnl::batch_normalization_backward::primitive_desc(
      dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, c.bn_out.get_desc(),
                                               c.conv_out.get_desc(), kBatchNormEpsilon, flags),
      user_scratchpad(), engine_, c.bn_fwd_pd);
  c.relu_fwd_pd = dnnl::eltwise_forward::primitive_desc(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::eltwise_relu,
                                  c.bn_out.get_desc(), 0.f),
      user_scratchpad(), engine_);
  c.scratch_bn_fwd = scratch(c.bn_fwd_pd, tag + ".bn_fwd");
  c.scratch_bn_infer = scratch(c.bn_infer_pd, tag + ".bn_infer");
  c.scratch_bn_bwd = scratch(c.bn_bwd_pd, tag + ".bn_bwd");
  c.scratch_relu_fwd = scratch(c.relu_fwd_pd, tag + ".relu");
  c.act = c.bn_out;
}

// The pooled map, where each window's maximum was (our argmax bytes or
// oneDNN's workspace), and the gradients of the pooled map and of the
// activation before it. Without a pool, the activation is the block's output.
void CpuTrainingStep::make_pool_buffers(ConvBlock& c, size_t i) {
  const std::string tag = block_tag(i);
  const bool bn = c.s.batch_norm;
  if (!c.pooling()) {
    c.pooled = c.act;
    c.d_pooled = make(c.act.get_desc(), bn ? tag + ".d_bn_out" : tag + ".d_out");
    c.d_act = c.d_pooled;
    return;
  }
  c.pooled = make(whole_batch(c, c.pool_pd.dst_desc()), tag + ".pooled");
  c.own_pool = own_pooling(c);
  if (c.own_pool) {
    c.workspace = make(with_type(c.pooled.get_desc(), dt::u8), tag + ".pool_argmax");
  } else {
    c.workspace = make(whole_batch(c, c.pool_pd.workspace_desc()), tag + ".pool_workspace");
    c.scratch_pool = scratch(c.pool_pd, tag + ".pool");
    c.scratch_pool_bwd = scratch(c.pool_bwd_pd, tag + ".pool_bwd");
  }
  c.d_pooled = make(c.pooled.get_desc(), tag + ".d_pooled");
}

// The gradient of what the pool reads (conv_out, or bn_out with batch norm),
// unless both of the block's gradients come from the pooled one (nothing
// then reads it), and the conv output's.
void CpuTrainingStep::make_activation_gradient(ConvBlock& c, size_t i) {
  const std::string tag = block_tag(i);
  const bool bn = c.s.batch_norm;
  if (c.pooling() && needs_pool_backward(c))
    c.d_act = make(c.act.get_desc(),
                   bn ? tag + ".d_bn_out" : tag + (c.sliced() ? ".d_out_slice" : ".d_out"));
  c.d_conv_out = bn ? make(c.conv_out.get_desc(), tag + ".d_out") : c.d_act;
}

// The data gradient into the previous block's pooled map (not for the first
// block: nobody wants d(image)), and the weights in the layout it wants.
void CpuTrainingStep::build_backward_data(ConvBlock& c, size_t i) {
  const ConvShape& s = c.s;
  const Mem::dims w_dims = {s.out_c, s.in_c, s.kernel, s.kernel};
  const Mem::dims strides = {1, 1}, pad = {s.pad, s.pad};
  const ConvBlock& prev = convs_[i - 1];
  const Mem::desc d_src_md =
      c.sliced() ? with_rows(prev.d_pooled.get_desc(), c.rows) : prev.d_pooled.get_desc();
  c.d_src = prev.d_pooled;
  c.pooled_dgrad = pooled_data_gradients(c, i, d_src_md);
  if (c.pooled_dgrad) {
    const int channels = c.d_src_lanes.blocks * c.d_src_lanes.lanes;
    c.dgrad_weights.resize(size_t(s.out_c) * s.kernel * s.kernel * size_t(channels));
    if (act_dt_ == dt::bf16)
      c.dgrad_sums.resize(
          pooled_dgrad_sums_floats(c.d_src_lanes, pooled_conv(s), omp_get_max_threads()));
    return;
  }
  c.bwd_d_pd = first_implemented(winograd(s), [&](auto alg) {
    auto desc = dnnl::convolution_backward_data::desc(alg, d_src_md, act_any(w_dims),
                                                      c.conv_out.get_desc(), strides, pad, pad);
    return dnnl::convolution_backward_data::primitive_desc(desc, user_scratchpad(), engine_,
                                                           c.fwd_pd);
  });
  c.scratch_bwd_d = scratch(c.bwd_d_pd, block_tag(i) + ".conv_bwd_d");
  c.w_bwd_d = c.bwd_d_pd.weights_desc() == canonical_weights_md(s)
                  ? c.w_canon
                  : persistent(c.bwd_d_pd.weights_desc());
}

void CpuTrainingStep::build_conv(size_t i, const Mem& src_in, std::vector<Op>& weight_ops) {
  ConvBlock c;
  c.s = shape_.convs[i];
  build_conv_slicing(c, i, src_in);
  if (i == 0) {
    const Mem::desc input_md = whole_batch(c, c.fwd_pd.src_desc());
    input_ = input_md == src_in.get_desc() ? src_in : make(input_md, "input_reordered");
    c.src = input_;
  } else {
    c.src = src_in;
  }
  const std::string tag = block_tag(i);
  c.conv_out = make(c.fwd_pd.dst_desc(), tag + (c.sliced() ? ".out_slice" : ".out"));
  bind_conv_parameters(c, i);
  if (c.s.batch_norm) build_batch_norm(c, i);
  make_pool_buffers(c, i);
  c.pooled_wgrad = pooled_weight_gradients(c, i);
  if (c.pooled_wgrad)
    c.wgrad_scratch.resize(pooled_wgrad_scratch_floats(c.src_lanes, c.pooled_lanes,
                                                       pooled_conv(c.s), omp_get_max_threads()));
  if (i > 0) build_backward_data(c, i);
  c.own_winograd = own_winograd_forward(c, i);
  if (c.own_winograd) drop(c.conv_out);  // the kernel pools from registers
  make_activation_gradient(c, i);
  // Backward weights (fp32 gradients): oneDNN's primitive, or ours straight
  // into the canonical gradient.
  if (!c.own_winograd) c.scratch_fwd = scratch(c.fwd_pd, tag + ".conv_fwd");
  if (!c.pooled_wgrad) c.scratch_bwd_w = scratch(c.bwd_w_pd, tag + ".conv_bwd_w");
  c.dw_bwd = c.pooled_wgrad || c.bwd_w_pd.diff_weights_desc() == canonical_weights_md(c.s)
                 ? c.dw_canon
                 : make(c.bwd_w_pd.diff_weights_desc(), tag + ".d_weight");
  if (c.sliced()) prepare_slices(c, tag);
  convs_.push_back(c);
  ConvBlock& cb = convs_.back();  // the op lists capture it by reference from here on
  if (!cb.own_winograd) reorder_if_needed(cb.w_canon, cb.w_fwd, weight_ops);
  if (i > 0 && cb.pooled_dgrad) {
    add(weight_ops, {cb.w_canon}, [&cb, this]() {
      arrange_dgrad_weights(floats(cb.w_canon), pooled_conv(cb.s), cb.d_src_lanes,
                            act_dt_ == dt::bf16, cb.dgrad_weights.data());
    });
  } else if (i > 0) {
    reorder_if_needed(cb.w_canon, cb.w_bwd_d, weight_ops);
  }
  if (i == 0) reorder_if_needed(input_user_, input_, forward_ops_);
  if (cb.own_winograd) return add_winograd_forward(cb, weight_ops);
  if (cb.sliced()) return add_sliced_forward(cb);
  add_conv_forward(cb, i);
}

// Convolution, batch norm (+ its ReLU, unless our pool applies it), pooling.
void CpuTrainingStep::add_conv_forward(ConvBlock& cb, size_t i) {
  auto conv = dnnl::convolution_forward(cb.fwd_pd);
  add(forward_ops_, {cb.src, cb.conv_out, cb.scratch_fwd}, [&cb, conv, this]() {
    std::unordered_map<int, Mem> a = {
        {DNNL_ARG_SRC, cb.src}, {DNNL_ARG_WEIGHTS, cb.w_fwd}, {DNNL_ARG_DST, cb.conv_out}};
    if (cb.b) a.insert({DNNL_ARG_BIAS, cb.b});
    conv.execute(stream_, args(std::move(a), cb.scratch_fwd));
  });
  if (cb.s.batch_norm) {
    add_batch_norm_forward(cb, i);
    // Our pool applies this ReLU to each window's max instead (pool_forward).
    if (!cb.own_pool) add_relu_forward(cb);
  }
  if (cb.own_pool) {
    add(forward_ops_, {cb.act, cb.pooled, cb.workspace},
        [&cb, this]() { pool_forward(cb, cb.act, cb.pooled, cb.workspace); });
  } else if (cb.pooling()) {
    auto pool = dnnl::pooling_forward(cb.pool_pd);
    add(forward_ops_, {cb.act, cb.pooled, cb.workspace, cb.scratch_pool}, [&cb, pool, this]() {
      pool.execute(stream_, args({{DNNL_ARG_SRC, cb.act},
                                  {DNNL_ARG_DST, cb.pooled},
                                  {DNNL_ARG_WORKSPACE, cb.workspace}},
                                 cb.scratch_pool));
    });
  }
}

// Training: the batch's statistics (and the running ones updated on the
// host); inference: the running statistics.
void CpuTrainingStep::add_batch_norm_forward(ConvBlock& cb, size_t i) {
  auto train = dnnl::batch_normalization_forward(cb.bn_fwd_pd);
  auto infer = dnnl::batch_normalization_forward(cb.bn_infer_pd);
  add(forward_ops_, {cb.conv_out, cb.bn_out, cb.scratch_bn_fwd, cb.scratch_bn_infer},
      [&cb, train, infer, i, this]() {
        std::unordered_map<int, Mem> a = {{DNNL_ARG_SRC, cb.conv_out},
                                          {DNNL_ARG_DST, cb.bn_out},
                                          {DNNL_ARG_SCALE, cb.gamma},
                                          {DNNL_ARG_SHIFT, cb.beta}};
        if (!training_) {
          a.insert({DNNL_ARG_MEAN, cb.running_mean});
          a.insert({DNNL_ARG_VARIANCE, cb.running_var});
          infer.execute(stream_, args(std::move(a), cb.scratch_bn_infer));
          return;
        }
        a.insert({DNNL_ARG_MEAN, cb.mean});
        a.insert({DNNL_ARG_VARIANCE, cb.variance});
        train.execute(stream_, args(std::move(a), cb.scratch_bn_fwd));
        stream_.wait();  // the running statistics read the batch's on the host
        bn_buffers_.update(int(i), static_cast<const float*>(cb.mean.get_data_handle()),
                           static_cast<const float*>(cb.variance.get_data_handle()), cb.s.out_c,
                           int64_t(shape_.batch) * cb.s.conv_h * cb.s.conv_w);
      });
}

// ReLU after batch norm, in place on bn_out.
void CpuTrainingStep::add_relu_forward(ConvBlock& c) {
  auto relu = dnnl::eltwise_forward(c.relu_fwd_pd);
  add(forward_ops_, {c.bn_out, c.scratch_relu_fwd}, [&c, relu, this]() {
    relu.execute(stream_,
                 args({{DNNL_ARG_SRC, c.bn_out}, {DNNL_ARG_DST, c.bn_out}}, c.scratch_relu_fwd));
  });
}

// Block k backward, in reverse order of its forward: pooling and ReLU, batch
// norm, then the convolution's weight and data gradients.
void CpuTrainingStep::add_conv_backward(size_t k) {
  ConvBlock& c = convs_[k];
  label_ = block_tag(k) + " backward";
  if (c.fused) return add_fused_backward(c);
  if (c.sliced()) {
    add_sliced_backward(c, k);
    return reorder_if_needed(c.dw_bwd, c.dw_canon, grad_ops_);
  }
  if (needs_pool_backward(c)) add_pool_relu_backward(c, k);
  if (c.s.batch_norm) add_batch_norm_backward(c);
  if (c.pooled_wgrad) {
    add(backward_ops_, {c.src, c.d_pooled, c.workspace},
        [&c, this]() { pooled_weight_gradient_of(c, c.src, c.d_pooled, c.workspace, false); });
  } else {
    auto bw = dnnl::convolution_backward_weights(c.bwd_w_pd);
    add(backward_ops_, {c.src, c.d_conv_out, c.dw_bwd, c.scratch_bwd_w}, [&c, bw, this]() {
      std::unordered_map<int, Mem> a = {{DNNL_ARG_SRC, c.src},
                                        {DNNL_ARG_DIFF_DST, c.d_conv_out},
                                        {DNNL_ARG_DIFF_WEIGHTS, c.dw_bwd}};
      if (c.db) a.insert({DNNL_ARG_DIFF_BIAS, c.db});
      bw.execute(stream_, args(std::move(a), c.scratch_bwd_w));
    });
  }
  reorder_if_needed(c.dw_bwd, c.dw_canon, grad_ops_);
  if (k == 0) return;
  if (c.pooled_dgrad) {
    add(backward_ops_, {c.d_pooled, c.workspace, c.d_src},
        [&c, this]() { pooled_data_gradient_of(c, c.d_pooled, c.workspace, c.d_src); });
    return;
  }
  auto bd = dnnl::convolution_backward_data(c.bwd_d_pd);
  add(backward_ops_, {c.d_conv_out, c.d_src, c.scratch_bwd_d}, [&c, bd, this]() {
    bd.execute(stream_, args({{DNNL_ARG_DIFF_DST, c.d_conv_out},
                              {DNNL_ARG_WEIGHTS, c.w_bwd_d},
                              {DNNL_ARG_DIFF_SRC, c.d_src}},
                             c.scratch_bwd_d));
  });
}

// From the pooled map's gradient to the activation's: our pool does ReLU and
// pool backward in one pass; otherwise oneDNN's ReLU backward (in place on
// the pooled gradient) and then its pool backward.
void CpuTrainingStep::add_pool_relu_backward(ConvBlock& c, size_t k) {
  if (c.own_pool) {
    add(backward_ops_, {c.d_pooled, c.workspace, c.d_act},
        [&c, this]() { pool_backward(c, c.d_pooled, c.workspace, c.d_act); });
    return;
  }
  add_relu_backward(c, k);
  if (!c.pooling()) return;
  auto pb = dnnl::pooling_backward(c.pool_bwd_pd);
  add(backward_ops_, {c.d_pooled, c.d_act, c.workspace, c.scratch_pool_bwd}, [&c, pb, this]() {
    pb.execute(stream_, args({{DNNL_ARG_DIFF_DST, c.d_pooled},
                              {DNNL_ARG_DIFF_SRC, c.d_act},
                              {DNNL_ARG_WORKSPACE, c.workspace}},
                             c.scratch_pool_bwd));
  });
}

// ReLU backward on block k's pooled map, in place (see the file comment of
// cpu_step.h), for the blocks whose pooling is oneDNN's or who have none.
void CpuTrainingStep::add_relu_backward(ConvBlock& c, size_t k) {
  const auto relu_bwd_pd = relu_backward_pd(c.pooled.get_desc());
  auto relu_bwd = dnnl::eltwise_backward(relu_bwd_pd);
  c.scratch_relu = scratch(relu_bwd_pd, block_tag(k) + ".relu_bwd");
  add(backward_ops_, {c.pooled, c.d_pooled, c.scratch_relu}, [&c, relu_bwd, this]() {
    relu_bwd.execute(stream_, args({{DNNL_ARG_DST, c.pooled},
                                    {DNNL_ARG_DIFF_DST, c.d_pooled},
                                    {DNNL_ARG_DIFF_SRC, c.d_pooled}},
                                   c.scratch_relu));
  });
}

void CpuTrainingStep::add_batch_norm_backward(ConvBlock& c) {
  auto bn_bwd = dnnl::batch_normalization_backward(c.bn_bwd_pd);
  add(backward_ops_, {c.conv_out, c.d_act, c.d_conv_out, c.scratch_bn_bwd}, [&c, bn_bwd, this]() {
    bn_bwd.execute(stream_, args({{DNNL_ARG_SRC, c.conv_out},
                                  {DNNL_ARG_MEAN, c.mean},
                                  {DNNL_ARG_VARIANCE, c.variance},
                                  {DNNL_ARG_DIFF_DST, c.d_act},
                                  {DNNL_ARG_SCALE, c.gamma},
                                  {DNNL_ARG_SHIFT, c.beta},
                                  {DNNL_ARG_DIFF_SRC, c.d_conv_out},
                                  {DNNL_ARG_DIFF_SCALE, c.dgamma},
                                  {DNNL_ARG_DIFF_SHIFT, c.dbeta}},
                                 c.scratch_bn_bwd));
  });
}

}  // namespace histocnn::cpu
