// A later conv block's forward on our Winograd F(4x4, 3x3) conv + bias +
// ReLU + 2x2 max-pool kernel (winograd_pool_kernels.h; see cpu_step.h for
// where it sits). The block's backward is unchanged: it reads the pooled
// map and the argmax bytes, which this op writes as our pool kernels do.
#include <omp.h>

#include "backends/cpu/cpu_step.h"
#include "backends/cpu/winograd_pool_kernels.h"

namespace histocnn::cpu {

bool CpuTrainingStep::own_winograd_forward(ConvBlock& c, size_t i) {
  // Where Winograd is switched on (off under --direct-conv) and this kernel
  // pays (own_winograd_pays: smaller maps than oneDNN's Winograd needs), in
  // either precision (bf16 maps in and out, fp32 arithmetic).
  if (!options_.cpu_own_winograd_forward || !options_.cpu_winograd || !own_winograd_pays(c.s) ||
      i == 0 || !c.own_pool || c.s.batch_norm || !winograd_pool_available())
    return false;
  const auto in = lane_layout(c.src.get_desc()), out = lane_layout(c.pooled.get_desc());
  if (!in || !out || !winograd_pool_applies(*in, *out, pooled_conv(c.s))) return false;
  c.winograd_in = *in;
  c.winograd_out = *out;
  c.winograd_weights.resize(winograd_weights_floats(pooled_conv(c.s)));
  c.winograd_scratch.resize(winograd_pool_scratch_floats(pooled_conv(c.s), omp_get_max_threads()));
  return true;
}

void CpuTrainingStep::add_winograd_forward(ConvBlock& cb, std::vector<Op>& weight_ops) {
  add(weight_ops, {cb.w_canon}, [&cb]() {
    winograd_transform_weights(floats(cb.w_canon), pooled_conv(cb.s), cb.winograd_weights.data());
  });
  add(forward_ops_, {cb.src, cb.pooled, cb.workspace}, [&cb, this]() {
    stream_.wait();  // src was written by the previous block (perhaps a primitive)
    winograd_pool_forward(act_dt_, cb.src.get_data_handle(), cb.winograd_in,
                          cb.winograd_weights.data(), floats(cb.b), cb.pooled.get_data_handle(),
                          static_cast<uint8_t*>(cb.workspace.get_data_handle()), cb.winograd_out,
                          pooled_conv(cb.s), cb.winograd_scratch);
  });
}

}  // namespace histocnn::cpu
