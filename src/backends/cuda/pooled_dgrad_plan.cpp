// The pooled data-gradient kernel's work split, as a plain function: host
// tests check it, and the step picks its tile sizes with it.
#include "backends/cuda/pooled_dgrad_kernels.h"

namespace histocnn::cuda {

PooledDgradPlan plan_pooled_dgrad(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                                  int tile_windows, bool channels_last) {
  PooledDgradPlan p;
  if (!pooled_dgrad_supported(kernel, pad, pool) || !pooled_dgrad_tile_supported(tile_windows))
    return p;
  const Dims4 chained = conv_output_dims(x, y.c, kernel, pad);
  if (x.n < 1 || x.c < 1 || y.c < 1 || chained.n != y.n || chained.h != y.h || chained.w != y.w ||
      y.h < 1 || y.w < 1)
    return p;
  p.channels_last = channels_last;
  p.kernel = kernel, p.pad = pad, p.pool = pool, p.tile_windows = tile_windows;
  p.tiles_y = (x.h + p.tile_px() - 1) / p.tile_px();
  p.tiles_x = (x.w + p.tile_px() - 1) / p.tile_px();
  p.channel_groups = (x.c + kPooledDgradLanes - 1) / kPooledDgradLanes;
  p.out_c = y.c;
  // CUDA's grid: y and z at most 65535 blocks.
  constexpr int64_t kMostBlocks = 65535;
  p.applies = p.tiles_y <= kMostBlocks && int64_t(x.n) * p.channel_groups <= kMostBlocks;
  return p;
}

}  // namespace histocnn::cuda
