// The CPU step's structure: the blocks in order, flatten, the dense layers
// (see cpu_step.h for the data flow; a conv block: cpu_step_conv.cpp).
#include "backends/cpu/cpu_step.h"

namespace histocnn::cpu {

void CpuTrainingStep::build() {
  const auto& s = shape_;
  auto user_md = Mem::desc(dims4(s.batch, s.channels, s.height, s.width), dt::f32, tag::nchw);
  input_user_ = make(user_md, "input");
  // Blocks are captured by reference in the op lists: no reallocation allowed.
  convs_.reserve(s.convs.size());
  denses_.reserve(s.denses.size());

  Mem src = input_user_;
  for (size_t i = 0; i < s.convs.size(); ++i) {
    label_ = "conv" + std::to_string(i + 1) + " forward";
    if (i == 0 && build_fused_conv(s.convs[0])) {
      src = convs_[0].pooled;
      continue;
    }
    build_conv(i, src, weight_ops_);
    src = convs_[i].pooled;
  }
  const auto gap_pd = build_flatten(src);
  auto flat_md = Mem::desc({s.batch, int64_t(s.denses.front().in)}, dt::f32, tag::nc);
  Mem flat = alias(flat_md, flat_nchw_);
  for (size_t i = 0; i < s.denses.size(); ++i) {
    label_ = "fc" + std::to_string(i + 1) + " forward";
    build_dense(i, i == 0 ? flat : denses_[i - 1].out);
  }
  probs_.assign(size_t(s.batch) * size_t(s.classes()), 0.0f);

  // Backward of the dense stack (reverse), then back into the conv stack.
  for (size_t k = denses_.size(); k-- > 0;) add_dense_backward(k);
  add_flatten_backward(gap_pd);
  for (size_t k = convs_.size(); k-- > 0;) add_conv_backward(k);
  memory_.parameter_bytes += int64_t(params_.values.size()) * 4 * 4;  // weights, grads, m, v
  plan_buffers();
}

// Flatten: the last pooled map -> plain NCHW, seen as [N, C*H*W] by the dense
// layers; or its global average, [N, C, 1, 1] seen as [N, C]. Returns the
// average pool's descriptor (empty without one), the hint of its backward.
dnnl::pooling_forward::primitive_desc CpuTrainingStep::build_flatten(const Mem& src) {
  const auto& last = shape_.convs.back();
  const bool gap = shape_.global_pool;
  auto nchw_md =
      Mem::desc(dims4(shape_.batch, last.out_c, gap ? 1 : last.out_h, gap ? 1 : last.out_w),
                dt::f32, tag::nchw);
  flat_nchw_ = make(nchw_md, gap ? "gap" : "flatten");
  d_flat_nchw_ = make(nchw_md, gap ? "d_gap" : "d_flatten");
  label_ = gap ? "gap forward" : "flatten";
  if (!gap) {
    reorder_if_needed(src, flat_nchw_, forward_ops_);
    return {};
  }
  // The average in the activations' type; bf16 is then converted for the
  // fp32 dense layers (and their gradient back).
  gap_out_ = flat_nchw_;
  d_gap_out_ = d_flat_nchw_;
  if (act_dt_ != dt::f32) {
    auto act_md = Mem::desc(nchw_md.dims(), act_dt_, tag::nchw);
    gap_out_ = make(act_md, "gap.act");
    d_gap_out_ = make(act_md, "d_gap.act");
  }
  const Mem::dims window = {last.out_h, last.out_w}, zero = {0, 0};
  const auto gap_pd = dnnl::pooling_forward::primitive_desc(
      dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training,
                                  dnnl::algorithm::pooling_avg_exclude_padding, src.get_desc(),
                                  gap_out_.get_desc(), window, window, zero, zero),
      user_scratchpad(), engine_);
  Mem pad = scratch(gap_pd, "gap");
  auto pool = dnnl::pooling_forward(gap_pd);
  add(forward_ops_, {src, gap_out_, pad}, [this, pool, src, pad]() {
    pool.execute(stream_, args({{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, gap_out_}}, pad));
  });
  reorder_if_needed(gap_out_, flat_nchw_, forward_ops_);
  return gap_pd;
}

void CpuTrainingStep::add_flatten_backward(const dnnl::pooling_forward::primitive_desc& gap_pd) {
  const bool gap = shape_.global_pool;
  label_ = gap ? "gap backward" : "flatten";
  ConvBlock& lc = convs_.back();
  if (!gap) return reorder_if_needed(d_flat_nchw_, lc.d_pooled, backward_ops_);
  reorder_if_needed(d_flat_nchw_, d_gap_out_, backward_ops_);
  const auto& last = shape_.convs.back();
  const Mem::dims window = {last.out_h, last.out_w}, zero = {0, 0};
  const auto gap_bwd_pd = dnnl::pooling_backward::primitive_desc(
      dnnl::pooling_backward::desc(dnnl::algorithm::pooling_avg_exclude_padding,
                                   lc.d_pooled.get_desc(), d_gap_out_.get_desc(), window, window,
                                   zero, zero),
      user_scratchpad(), engine_, gap_pd);
  Mem pad = scratch(gap_bwd_pd, "gap_bwd");
  auto pool_bwd = dnnl::pooling_backward(gap_bwd_pd);
  add(backward_ops_, {d_gap_out_, lc.d_pooled, pad}, [this, pool_bwd, &lc, pad]() {
    pool_bwd.execute(
        stream_, args({{DNNL_ARG_DIFF_DST, d_gap_out_}, {DNNL_ARG_DIFF_SRC, lc.d_pooled}}, pad));
  });
}

// Dense layer k backward: the gradient w.r.t. its pre-activation (d_out
// already holds dL/d(out) with the dropout mask folded in by the layer above,
// times ReLU'), then dW, db and the gradient of its input.
void CpuTrainingStep::add_dense_backward(size_t k) {
  DenseBlock& d = denses_[k];
  label_ = "fc" + std::to_string(k + 1) + " backward";
  if (d.s.relu) {
    add(backward_ops_, {d.d_out, d.out}, [&d, this]() {
      float* g = floats(d.d_out);
      const float* y = floats(d.out);
      const int64_t n = int64_t(shape_.batch) * d.s.out;
      const bool drop = training_ && d.s.dropout_after > 0;
      for (int64_t j = 0; j < n; ++j)
        g[j] = elementwise::relu_dropout_grad(y[j], g[j], drop ? d.mask[j] : 1.0f);
    });
  }
  add(backward_ops_, {d.src, d.d_out, d.d_src}, [&d, this]() {
    dense_backward(shape_.batch, d.s.in, d.s.out, floats(d.src), floats(d.d_out), floats(d.w),
                   floats(d.dw), floats(d.db), floats(d.d_src));
  });
}

void CpuTrainingStep::build_dense(size_t i, const Mem& src) {
  const DenseShape& s = shape_.denses[i];
  const int n = shape_.batch;
  DenseBlock d;
  d.s = s;
  auto w_md = Mem::desc({s.out, s.in}, dt::f32, tag::oi);
  auto b_md = Mem::desc({s.out}, dt::f32, tag::x);
  auto dst_md = Mem::desc({n, s.out}, dt::f32, tag::nc);
  const std::string base = "fc" + std::to_string(i + 1);
  d.w = view(w_md, params_.data(params_.info(base + ".weight")));
  d.b = view(b_md, params_.data(params_.info(base + ".bias")));
  d.dw = view(w_md, grads_.data(grads_.info(base + ".weight")));
  d.db = view(b_md, grads_.data(grads_.info(base + ".bias")));
  d.src = src;
  d.out = make(dst_md, base + ".out");
  d.d_out = make(dst_md, base + ".d_out");
  d.d_src =
      i == 0 ? alias(Mem::desc({n, s.in}, dt::f32, tag::nc), d_flat_nchw_) : denses_[i - 1].d_out;
  d.mask.assign(size_t(n) * s.out, 1.0f);
  denses_.push_back(d);
  DenseBlock& db = denses_.back();
  add(forward_ops_, {db.src, db.out}, [&db, this]() {
    dense_forward(shape_.batch, db.s.in, db.s.out, floats(db.src), floats(db.w), floats(db.b),
                  db.s.relu, floats(db.out));
  });
  if (s.dropout_after > 0) {
    // Inverted dropout, in place on the output; the mask is kept for backward.
    add(forward_ops_, {db.out}, [&db, this]() {
      if (!training_) return;
      float* y = floats(db.out);
      const float p = db.s.dropout_after;
      const uint64_t stream = elementwise::dropout_stream(step_ + 1, int(&db - denses_.data()));
      // Indexed by global row: a slice of a batch draws the whole batch's masks.
      const uint64_t first = uint64_t(slice_.first_row) * uint64_t(db.s.out);
      for (size_t j = 0; j < db.mask.size(); ++j) {
        db.mask[j] = elementwise::dropout_scale(options_.dropout_seed, stream, first + j, p);
        y[j] *= db.mask[j];
      }
    });
  }
}

}  // namespace histocnn::cpu
