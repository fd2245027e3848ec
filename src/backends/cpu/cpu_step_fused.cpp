// The CPU step's first block on the fused convolution + ReLU + max-pool
// kernels (conv_pool_kernels.h; see cpu_step.h for where it sits).
#include <omp.h>

#include "backends/cpu/cpu_step.h"

namespace histocnn::cpu {

namespace {
// The kernels' scratch for the current OpenMP team (sized when the step is
// built; grown only if the team has grown since).
float* scratch_for_team(ConvBlock& c) {
  const size_t floats = conv_pool_scratch_floats(c.fused_geometry, omp_get_max_threads());
  if (c.fused_scratch.size() < floats) c.fused_scratch.resize(floats);
  return c.fused_scratch.data();
}
}  // namespace

bool CpuTrainingStep::build_fused_conv(const ConvShape& s) {
  // oneDNN's pooling asked for: the whole block as before (the fused kernels pool too).
  if (options_.cpu_onednn_conv1 || options_.cpu_onednn_pooling || s.batch_norm || s.pool < 2 ||
      !conv_pool_available())
    return false;
  const int n = shape_.batch;
  ConvBlock c;
  c.s = s;
  // The pooled map takes the layout oneDNN's convolution and pool would have
  // given it: the second block's primitives are created against it.
  build_conv_primitives(c, act_any(dims4(n, s.in_c, s.in_h, s.in_w)), n);
  const auto pooled = lane_layout(c.pool_pd.dst_desc());
  ConvPoolGeometry g;
  g.n = n, g.in_c = s.in_c, g.in_h = s.in_h + 2 * s.pad, g.in_w = s.in_w + 2 * s.pad;
  g.out_c = s.out_c, g.kernel = s.kernel, g.pool = s.pool;
  if (!pooled || !conv_pool_unsupported(g, *pooled).empty()) return false;
  c.fused = true;
  c.fused_geometry = g;
  c.pooled_lanes = *pooled;
  c.fused_scratch.resize(conv_pool_scratch_floats(g, omp_get_max_threads()));
  c.src = input_user_;
  if (s.pad > 0)
    c.src = make(Mem::desc(dims4(n, s.in_c, g.in_h, g.in_w), dt::f32, tag::nchw), "input_padded");
  c.pooled = make(c.pool_pd.dst_desc(), "conv1.pooled");
  c.workspace = make(with_type(c.pooled.get_desc(), dt::u8), "conv1.pool_argmax");
  c.d_pooled = make(c.pooled.get_desc(), "conv1.d_pooled");
  // Canonical weights and gradients, viewed in the flat vectors.
  const auto w_md = Mem::desc({s.out_c, s.in_c, s.kernel, s.kernel}, dt::f32, tag::oihw);
  const auto bias_md = Mem::desc({s.out_c}, dt::f32, tag::x);
  c.w_canon = view(w_md, params_.data(params_.info("conv1.weight")));
  c.b = view(bias_md, params_.data(params_.info("conv1.bias")));
  c.dw_canon = view(w_md, grads_.data(grads_.info("conv1.weight")));
  c.db = view(bias_md, grads_.data(grads_.info("conv1.bias")));
  convs_.push_back(std::move(c));
  ConvBlock& cb = convs_.back();

  if (s.pad > 0) {  // zero borders around each image's planes
    add(forward_ops_, {input_user_, cb.src}, [&cb, this]() {
      const ConvPoolGeometry& f = cb.fused_geometry;
      const int pad = cb.s.pad, h = cb.s.in_h, w = cb.s.in_w;
      const float* from = static_cast<const float*>(input_user_.get_data_handle());
      float* to = static_cast<float*>(cb.src.get_data_handle());
#pragma omp parallel for schedule(static)
      for (int64_t plane = 0; plane < int64_t(f.n) * f.in_c; ++plane) {
        float* out = to + plane * f.in_h * f.in_w;
        std::fill(out, out + int64_t(f.in_h) * f.in_w, 0.0f);
        for (int y = 0; y < h; ++y)
          std::copy_n(from + (plane * h + y) * w, w, out + int64_t(y + pad) * f.in_w + pad);
      }
    });
  }
  add(forward_ops_, {cb.src, cb.pooled, cb.workspace}, [&cb, this]() {
    conv_pool_forward(static_cast<const float*>(cb.src.get_data_handle()), cb.fused_geometry,
                      static_cast<const float*>(cb.w_canon.get_data_handle()),
                      static_cast<const float*>(cb.b.get_data_handle()), act_dt_,
                      cb.pooled.get_data_handle(),
                      static_cast<uint8_t*>(cb.workspace.get_data_handle()), cb.pooled_lanes,
                      scratch_for_team(cb));
  });
  return true;
}

void CpuTrainingStep::add_fused_backward(ConvBlock& c) {
  add(backward_ops_, {c.src, c.d_pooled, c.workspace}, [&c, this]() {
    stream_.wait();  // d_pooled was written by the second block's data backward
    conv_pool_backward(static_cast<const float*>(c.src.get_data_handle()), c.fused_geometry,
                       act_dt_, c.d_pooled.get_data_handle(),
                       static_cast<const uint8_t*>(c.workspace.get_data_handle()), c.pooled_lanes,
                       static_cast<float*>(c.dw_canon.get_data_handle()),
                       static_cast<float*>(c.db.get_data_handle()), scratch_for_team(c));
  });
}

}  // namespace histocnn::cpu
