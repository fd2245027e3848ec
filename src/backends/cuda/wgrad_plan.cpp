// The small-input-channel weight-gradient kernel's work split, as a plain
// function: host tests check it and `memplan --device cuda` can use it
// without a GPU.
#include <algorithm>

#include "backends/cuda/wgrad_kernels.h"

namespace histocnn::cuda {
namespace {

// Bands over the first `rows_used` output rows, each a multiple of `pool`
// rows (the pooled route's bands hold whole windows).
SmallWgradPlan plan_bands(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                          int target_blocks, bool channels_last) {
  SmallWgradPlan p;
  p.channels_last = channels_last;
  p.pool = pool;
  const int rows_used = y.h / pool * pool;
  if (!small_wgrad_supported(x.c, kernel) || y.h + kernel - 1 != x.h + 2 * pad ||
      y.w + kernel - 1 != x.w + 2 * pad || y.n != x.n || y.n < 1 || y.h < 1 || y.w < pool ||
      rows_used < 1)
    return p;
  p.tile_w = x.w + 2 * pad;
  p.taps = x.c * kernel * kernel;
  const size_t row_bytes = size_t(x.c) * size_t(p.tile_w) * sizeof(float);
  const int fit_rows = int(kSmallWgradSharedLimit / row_bytes) - (kernel - 1);
  const int most_rows = std::min(fit_rows, kSmallWgradMaxRows) / pool * pool;
  if (most_rows < 1) return p;
  // Enough blocks to fill the GPU: spread N * rows over target_blocks.
  const int64_t rows_total = int64_t(y.n) * rows_used;
  const int64_t wanted = (rows_total + std::max(target_blocks, 1) - 1) / std::max(target_blocks, 1);
  p.rows_per_band = int(std::clamp<int64_t>((wanted + pool - 1) / pool * pool, pool, most_rows));
  p.rows_per_band = std::min(p.rows_per_band, rows_used);
  p.bands = (rows_used + p.rows_per_band - 1) / p.rows_per_band;
  p.shared_bytes = size_t(p.rows_per_band + kernel - 1) * row_bytes;
  p.bias_partial_count = pool > 1 ? size_t(y.n) * size_t(p.bands) * size_t(y.c) : 0;
  p.workspace_bytes =
      (size_t(y.n) * size_t(p.bands) * size_t(y.c) * size_t(p.taps) + p.bias_partial_count) *
      sizeof(float);
  p.applies = true;
  return p;
}

}  // namespace

SmallWgradPlan plan_small_wgrad(const Dims4& x, const Dims4& y, int kernel, int pad,
                                int target_blocks, bool channels_last) {
  return plan_bands(x, y, kernel, pad, 1, target_blocks, channels_last);
}

SmallWgradPlan plan_small_wgrad_pooled(const Dims4& x, const Dims4& y, int kernel, int pad,
                                       int pool, int target_blocks, bool channels_last) {
  if (pool < 2 || pool > 8) return {};
  return plan_bands(x, y, kernel, pad, pool, target_blocks, channels_last);
}

}  // namespace histocnn::cuda
