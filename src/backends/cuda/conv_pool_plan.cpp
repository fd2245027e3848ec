// The fused convolution + pool forward kernel's work split, as a plain
// function: host tests check it, and the step and `memplan --device cuda`
// use it without running a kernel.
#include <algorithm>

#include "backends/cuda/conv_pool_kernels.h"

namespace histocnn::cuda {

ConvPoolPlan plan_conv_pool(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                            int target_blocks, bool channels_last, bool pooled_channels_last) {
  ConvPoolPlan p;
  p.channels_last = channels_last;
  p.pooled_channels_last = pooled_channels_last;
  p.pool = pool;
  const int pooled_h = pool > 0 ? y.h / pool : 0, pooled_w = pool > 0 ? y.w / pool : 0;
  if (!conv_pool_supported(x.c, kernel, pool) || y.h + kernel - 1 != x.h + 2 * pad ||
      y.w + kernel - 1 != x.w + 2 * pad || y.n != x.n || y.n < 1 || y.c < 1 || pooled_h < 1 ||
      pooled_w < 1)
    return p;
  p.tile_w = x.w + 2 * pad;
  p.taps = x.c * kernel * kernel;
  p.out_c = y.c;
  p.channel_group = std::min(y.c, kConvPoolChannelGroup);
  p.groups = (y.c + p.channel_group - 1) / p.channel_group;
  const size_t row_bytes = size_t(x.c) * size_t(p.tile_w) * sizeof(float);
  const size_t parameter_bytes = size_t(y.c) * size_t(p.taps + 1) * sizeof(float);
  if (parameter_bytes >= kConvPoolSharedLimit) return p;
  // A band of r pooled rows stages r * pool + kernel - 1 input rows.
  const int fit_rows =
      (int((kConvPoolSharedLimit - parameter_bytes) / row_bytes) - (kernel - 1)) / pool;
  const int most_rows = std::min(fit_rows, kConvPoolMaxRows);
  if (most_rows < 1) return p;
  const int64_t rows_total = int64_t(y.n) * pooled_h;
  const int64_t blocks = std::max(target_blocks, 1);
  const int64_t wanted = (rows_total + blocks - 1) / blocks;
  p.rows_per_band = int(std::clamp<int64_t>(wanted, 1, std::min(most_rows, pooled_h)));
  p.bands = (pooled_h + p.rows_per_band - 1) / p.rows_per_band;
  p.shared_bytes = size_t(p.rows_per_band * pool + kernel - 1) * row_bytes + parameter_bytes;
  p.applies = true;
  return p;
}

}  // namespace histocnn::cuda
