// The small-input-channel weight-gradient kernel's work split, as a plain
// function: host tests check it and `memplan --device cuda` can use it
// without a GPU.
#include <algorithm>

#include "backends/cuda/wgrad_kernels.h"

namespace histocnn::cuda {

SmallWgradPlan plan_small_wgrad(const Dims4& x, const Dims4& y, int kernel, int pad,
                                int target_blocks, bool channels_last) {
  SmallWgradPlan p;
  p.channels_last = channels_last;
  if (!small_wgrad_supported(x.c, kernel) || y.h + kernel - 1 != x.h + 2 * pad ||
      y.w + kernel - 1 != x.w + 2 * pad || y.n != x.n || y.n < 1 || y.h < 1 || y.w < 1)
    return p;
  p.tile_w = x.w + 2 * pad;
  p.taps = x.c * kernel * kernel;
  const size_t row_bytes = size_t(x.c) * size_t(p.tile_w) * sizeof(float);
  const int fit_rows = int(kSmallWgradSharedLimit / row_bytes) - (kernel - 1);
  if (fit_rows < 1) return p;
  // Enough blocks to fill the GPU: spread N * y.h rows over target_blocks.
  const int64_t rows_total = int64_t(y.n) * y.h;
  const int64_t wanted = (rows_total + std::max(target_blocks, 1) - 1) / std::max(target_blocks, 1);
  p.rows_per_band = int(std::clamp<int64_t>(wanted, 1, std::min(fit_rows, kSmallWgradMaxRows)));
  p.rows_per_band = std::min(p.rows_per_band, y.h);
  p.bands = (y.h + p.rows_per_band - 1) / p.rows_per_band;
  p.shared_bytes = size_t(p.rows_per_band + kernel - 1) * row_bytes;
  p.workspace_bytes = size_t(y.n) * size_t(p.bands) * size_t(y.c) * size_t(p.taps) * sizeof(float);
  p.applies = true;
  return p;
}

}  // namespace histocnn::cuda
