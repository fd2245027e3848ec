// Micro-batched convolution blocks and the CPU step's precision facts (see
// cpu_step.h). A sliced block keeps its convolution output for `rows` images
// only: per slice, conv -> ReLU (fused) -> max-pool forward, and ReLU backward
// -> pool backward -> conv backward weights (summed over the slices) and data
// backward. The convolution output of a slice is still in cache when the pool
// (or in backward the convolution) reads it back, instead of a round trip
// through memory for the whole batch.
#include <algorithm>

#include "backends/cpu/cpu_step.h"
#include "backends/cpu/winograd_pool_kernels.h"

namespace histocnn::cpu {

Mem::desc with_rows(const Mem::desc& md, int rows) {
  dnnl_memory_desc_t d = md.data;
  if (d.format_kind != dnnl_blocked || d.ndims < 1 || d.dims[0] != d.padded_dims[0] ||
      d.offset0 != 0)
    return {};
  const auto& blocking = d.format_desc.blocking;
  for (int k = 0; k < blocking.inner_nblks; ++k)
    if (blocking.inner_idxs[k] == 0) return {};  // images blocked together
  // Image-outermost and dense: image k starts at k * (bytes per image).
  const size_t elements_per_row =
      md.get_size() / size_t(d.dims[0]) / dnnl_data_type_size(d.data_type);
  if (size_t(blocking.strides[0]) != elements_per_row) return {};
  d.dims[0] = d.padded_dims[0] = rows;
  Mem::desc out(d);
  if (out.get_size() != elements_per_row * dnnl_data_type_size(d.data_type) * size_t(rows))
    return {};
  return out;
}

Mem::desc with_type(const Mem::desc& md, dt type) {
  dnnl_memory_desc_t d = md.data;
  d.data_type = static_cast<dnnl_data_type_t>(type);
  return Mem::desc(d);
}

int slice_rows(int batch, size_t row_bytes, size_t budget) {
  for (int rows = batch; rows > 1; --rows)
    if (batch % rows == 0 && size_t(rows) * row_bytes <= budget) return rows;
  return 1;
}

bool cpu_has_bf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return (isa & bf16) == bf16;  // the ISA values nest: AMX includes AVX512-BF16
}

std::string CpuTrainingStep::isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "generic x86";
  }
}

// The implementation of each direction, e.g. "oneDNN jit_wino_4x3:avx512_core"
// (once when all agree, else forward / weights / data).
static std::string conv_implementations(const ConvBlock& c) {
  const PooledConv conv = pooled_conv(c.s);
  const std::string onednn = "oneDNN ";
  std::vector<std::string> names = {
      c.own_winograd ? "histocnn Winograd F(4x4,3x3)+ReLU+pool " + winograd_pool_isa()
                     : onednn + c.fwd_pd.impl_info_str(),
      c.pooled_wgrad
          ? "histocnn pooled weight gradient " + pooled_wgrad_isa(c.src_lanes, c.pooled_lanes, conv)
          : onednn + c.bwd_w_pd.impl_info_str()};
  if (c.pooled_dgrad)
    names.push_back("histocnn pooled data gradient " +
                    pooled_dgrad_isa(c.d_src_lanes, c.pooled_lanes, conv));
  else if (c.bwd_d_pd)
    names.push_back(onednn + c.bwd_d_pd.impl_info_str());
  std::string all = names[0];
  bool same = true;
  for (size_t i = 1; i < names.size(); ++i) {
    same = same && names[i] == names[0];
    all += " / " + names[i];
  }
  return same ? names[0] : all;
}

nlohmann::json CpuTrainingStep::details() const {
  nlohmann::json slices = nlohmann::json::object(), pools = nlohmann::json::object(),
                 convolutions = nlohmann::json::object();
  for (size_t i = 0; i < convs_.size(); ++i) {
    const ConvBlock& c = convs_[i];
    const std::string name = "conv" + std::to_string(i + 1);
    if (c.sliced()) slices[name] = {{"rows", c.rows}, {"slices", c.slices}};
    convolutions[name] =
        c.fused ? "histocnn fused conv+ReLU+pool " + conv_pool_isa() : conv_implementations(c);
    if (c.pooling())
      pools[name] = c.fused      ? "histocnn fused " + conv_pool_isa()
                    : c.own_pool ? "histocnn " + pool_kernels_isa(c.pooled_lanes.lanes)
                                 : "oneDNN";
  }
  return {{"precision", options_.precision},
          {"isa", isa_name()},
          {"onednn", std::to_string(dnnl_version()->major) + "." +
                         std::to_string(dnnl_version()->minor) + "." +
                         std::to_string(dnnl_version()->patch)},
          {"slice_budget_bytes", options_.cpu_slice_bytes},
          {"denormals", options_.flush_denormals ? "flushed to zero" : "kept"},
          {"winograd", !options_.cpu_winograd          ? "off"
                       : options_.cpu_winograd_weights ? "where oneDNN has it"
                                                       : "where oneDNN has it, but not for the "
                                                         "weight gradients"},
          {"micro_batched", slices},
          {"convolution", convolutions},
          {"max_pool", pools}};
}

void CpuTrainingStep::prepare_slices(ConvBlock& c, const std::string& tag) {
  auto slice_view = [this, &c](const Mem& whole) {
    return Mem(with_rows(whole.get_desc(), c.rows), engine_, DNNL_MEMORY_NONE);
  };
  c.src_view = slice_view(c.src);
  c.pooled_view = slice_view(c.pooled);
  c.workspace_view = slice_view(c.workspace);
  c.d_pooled_view = slice_view(c.d_pooled);
  if (c.d_src) c.d_src_view = slice_view(c.d_src);
  if (!c.own_pool) {  // ours fuses the ReLU backward into the pool's
    c.relu_bwd_pd = relu_backward_pd(c.pool_pd.dst_desc());  // one slice's pooled map
    c.scratch_relu = scratch(c.relu_bwd_pd, tag + ".relu_bwd");
  }
  // Slices after the first write their weight gradients here; they are added
  // to the first slice's (same layout, so element by element). Ours from the
  // pooled gradient add into the sums themselves.
  if (c.pooled_wgrad) return;
  c.dw_part = make(c.bwd_w_pd.diff_weights_desc(), tag + ".d_weight_slice");
  c.db_part = make(c.db.get_desc(), tag + ".d_bias_slice");
}

bool CpuTrainingStep::own_pooling(ConvBlock& c) const {
  if (options_.cpu_onednn_pooling || !c.pooling()) return false;
  const auto in = lane_layout(c.act.get_desc()), out = lane_layout(c.pool_pd.dst_desc());
  if (!in || !out || !poolable(*in, *out, c.s.pool)) return false;
  c.act_lanes = *in;
  c.pooled_lanes = *out;
  return true;
}

void CpuTrainingStep::pool_forward(const ConvBlock& c, const Mem& act, const Mem& pooled,
                                   const Mem& argmax) {
  stream_.wait();  // the convolution (or batch norm) wrote `act`
  // Without batch norm the convolution applied the ReLU (a post-op); with it,
  // the pool applies it to each window's max (no ReLU pass over bn_out).
  max_pool_forward(act_dt_, act.get_data_handle(), c.act_lanes, pooled.get_data_handle(),
                   static_cast<uint8_t*>(argmax.get_data_handle()), c.pooled_lanes, c.s.pool,
                   /*relu=*/c.s.batch_norm);
}

void CpuTrainingStep::pool_backward(const ConvBlock& c, const Mem& d_pooled, const Mem& argmax,
                                    const Mem& d_act) {
  stream_.wait();  // d_pooled was written by a primitive
  max_pool_relu_backward(act_dt_, d_pooled.get_data_handle(),
                         static_cast<const uint8_t*>(argmax.get_data_handle()), c.pooled_lanes,
                         d_act.get_data_handle(), c.act_lanes, c.s.pool);
}

bool CpuTrainingStep::pooled_weight_gradients(ConvBlock& c, size_t i) const {
  if (!options_.cpu_pooled_weight_gradients || i == 0 || !c.own_pool || c.s.batch_norm)
    return false;
  const auto src = lane_layout(c.fwd_pd.src_desc());  // one slice's, as pooled_lanes
  if (!src) return false;
  c.src_lanes = *src;
  return pooled_wgrad_fast(c.src_lanes, c.pooled_lanes, pooled_conv(c.s));
}

void CpuTrainingStep::pooled_weight_gradient_of(ConvBlock& c, const Mem& src, const Mem& d_pooled,
                                                const Mem& argmax, bool accumulate) {
  stream_.wait();  // d_pooled was written by a primitive
  pooled_weight_gradient(act_dt_, src.get_data_handle(), c.src_lanes, d_pooled.get_data_handle(),
                         static_cast<const uint8_t*>(argmax.get_data_handle()), c.pooled_lanes,
                         pooled_conv(c.s), floats(c.dw_canon), floats(c.db), accumulate,
                         c.wgrad_scratch);
}

bool CpuTrainingStep::pooled_data_gradients(ConvBlock& c, size_t i, const Mem::desc& d_src) const {
  if (!options_.cpu_pooled_data_gradients || i == 0 || !c.own_pool || c.s.batch_norm) return false;
  const auto lanes = lane_layout(d_src);
  if (!lanes) return false;
  c.d_src_lanes = *lanes;
  return pooled_dgrad_fast(c.d_src_lanes, c.pooled_lanes, pooled_conv(c.s));
}

void CpuTrainingStep::pooled_data_gradient_of(ConvBlock& c, const Mem& d_pooled, const Mem& argmax,
                                              const Mem& d_src) {
  stream_.wait();  // d_pooled was written by a primitive
  pooled_data_gradient(act_dt_, d_pooled.get_data_handle(),
                       static_cast<const uint8_t*>(argmax.get_data_handle()), c.pooled_lanes,
                       c.dgrad_weights.data(), pooled_conv(c.s), d_src.get_data_handle(),
                       c.d_src_lanes, c.dgrad_sums);
}

namespace {
// Points `view` at slice j of the whole-batch buffer `whole`.
void point(Mem& view, const Mem& whole, int j) {
  auto* base = static_cast<char*>(whole.get_data_handle());
  view.set_data_handle(base + size_t(j) * view.get_desc().get_size());
}

void accumulate(const Mem& into, const Mem& part) {
  float* y = static_cast<float*>(into.get_data_handle());
  const float* x = static_cast<const float*>(part.get_data_handle());
  const size_t n = part.get_desc().get_size() / sizeof(float);
  for (size_t k = 0; k < n; ++k) y[k] += x[k];
}
}  // namespace

void CpuTrainingStep::add_sliced_forward(ConvBlock& cb) {
  auto conv = dnnl::convolution_forward(cb.fwd_pd);
  dnnl::pooling_forward pool;
  if (!cb.own_pool) pool = dnnl::pooling_forward(cb.pool_pd);
  add(forward_ops_, {cb.src, cb.conv_out, cb.pooled, cb.workspace, cb.scratch_fwd, cb.scratch_pool},
      [&cb, conv, pool, this]() {
        for (int j = 0; j < cb.slices; ++j) {
          point(cb.src_view, cb.src, j);
          point(cb.pooled_view, cb.pooled, j);
          point(cb.workspace_view, cb.workspace, j);
          conv.execute(stream_, args({{DNNL_ARG_SRC, cb.src_view},
                                      {DNNL_ARG_WEIGHTS, cb.w_fwd},
                                      {DNNL_ARG_BIAS, cb.b},
                                      {DNNL_ARG_DST, cb.conv_out}},
                                     cb.scratch_fwd));
          if (cb.own_pool) {
            pool_forward(cb, cb.conv_out, cb.pooled_view, cb.workspace_view);
            continue;
          }
          pool.execute(stream_, args({{DNNL_ARG_SRC, cb.conv_out},
                                      {DNNL_ARG_DST, cb.pooled_view},
                                      {DNNL_ARG_WORKSPACE, cb.workspace_view}},
                                     cb.scratch_pool));
        }
      });
}

void CpuTrainingStep::add_sliced_backward(ConvBlock& c, size_t k) {
  dnnl::eltwise_backward relu_bwd;
  dnnl::pooling_backward pool_bwd;
  if (!c.own_pool) {
    relu_bwd = dnnl::eltwise_backward(c.relu_bwd_pd);
    pool_bwd = dnnl::pooling_backward(c.pool_bwd_pd);
  }
  dnnl::convolution_backward_weights bwd_w;
  if (!c.pooled_wgrad) bwd_w = dnnl::convolution_backward_weights(c.bwd_w_pd);
  dnnl::convolution_backward_data bwd_d;
  if (k > 0 && !c.pooled_dgrad) bwd_d = dnnl::convolution_backward_data(c.bwd_d_pd);
  // Our pool's argmax bytes say where the pooled value is positive; oneDNN's
  // ReLU backward reads the pooled map.
  add(backward_ops_,
      {c.own_pool ? Mem() : c.pooled, c.d_pooled, c.workspace, c.d_act, c.src, c.dw_bwd, c.dw_part,
       c.db_part, c.scratch_relu, c.scratch_pool_bwd, c.scratch_bwd_w, c.scratch_bwd_d, c.d_src},
      [&c, relu_bwd, pool_bwd, bwd_w, bwd_d, k, this]() {
        for (int j = 0; j < c.slices; ++j) {
          if (!c.own_pool) point(c.pooled_view, c.pooled, j);
          point(c.d_pooled_view, c.d_pooled, j);
          point(c.workspace_view, c.workspace, j);
          point(c.src_view, c.src, j);
          if (c.own_pool) {
            if (needs_pool_backward(c))
              pool_backward(c, c.d_pooled_view, c.workspace_view, c.d_act);
          } else {
            // ReLU backward on the pooled map, in place (see cpu_step.h).
            relu_bwd.execute(stream_, args({{DNNL_ARG_DST, c.pooled_view},
                                            {DNNL_ARG_DIFF_DST, c.d_pooled_view},
                                            {DNNL_ARG_DIFF_SRC, c.d_pooled_view}},
                                           c.scratch_relu));
            pool_bwd.execute(stream_, args({{DNNL_ARG_DIFF_DST, c.d_pooled_view},
                                            {DNNL_ARG_DIFF_SRC, c.d_act},
                                            {DNNL_ARG_WORKSPACE, c.workspace_view}},
                                           c.scratch_pool_bwd));
          }
          const bool first = j == 0;
          if (c.pooled_wgrad) {
            pooled_weight_gradient_of(c, c.src_view, c.d_pooled_view, c.workspace_view, !first);
          } else {
            bwd_w.execute(stream_, args({{DNNL_ARG_SRC, c.src_view},
                                         {DNNL_ARG_DIFF_DST, c.d_act},
                                         {DNNL_ARG_DIFF_WEIGHTS, first ? c.dw_bwd : c.dw_part},
                                         {DNNL_ARG_DIFF_BIAS, first ? c.db : c.db_part}},
                                        c.scratch_bwd_w));
          }
          if (!first && !c.pooled_wgrad) {
            stream_.wait();
            accumulate(c.dw_bwd, c.dw_part);
            accumulate(c.db, c.db_part);
          }
          if (k > 0) point(c.d_src_view, c.d_src, j);
          if (k > 0 && c.pooled_dgrad) {
            pooled_data_gradient_of(c, c.d_pooled_view, c.workspace_view, c.d_src_view);
          } else if (k > 0) {
            bwd_d.execute(stream_, args({{DNNL_ARG_DIFF_DST, c.d_act},
                                         {DNNL_ARG_WEIGHTS, c.w_bwd_d},
                                         {DNNL_ARG_DIFF_SRC, c.d_src_view}},
                                        c.scratch_bwd_d));
          }
        }
      });
}

}  // namespace histocnn::cpu

namespace histocnn {
bool cpu_supports_bf16() {
  return cpu::cpu_has_bf16();
}
// What both Winograd F(4x4, 3x3) routes need: a 3x3 kernel and whole
// 16-channel blocks in and out; and the conv output's shorter side.
static bool winograd_shape(const ConvShape& s) {
  return s.kernel == 3 && s.in_c % 16 == 0 && s.out_c % 16 == 0;
}
static int shorter_side(const ConvShape& s) {
  return std::min(s.conv_h, s.conv_w);
}
bool winograd_pays(const ConvShape& s) {
  const int side = shorter_side(s);
  return winograd_shape(s) && (side >= 24 || (s.in_c >= 64 && side >= 12));
}
bool own_winograd_pays(const ConvShape& s) {
  return winograd_shape(s) && shorter_side(s) >= 12;
}

size_t cpu_slice_bytes_for(int threads) {
  constexpr size_t kMiB = size_t(1) << 20;
  return std::max(4 * kMiB, 2 * kMiB * size_t(std::max(threads, 1)));
}
}  // namespace histocnn
