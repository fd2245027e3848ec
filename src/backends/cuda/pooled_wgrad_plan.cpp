// The many-channel pooled weight-gradient kernel's work split, as a plain
// function: host tests check it, and the step sizes its workspace with it.
#include <algorithm>

#include "backends/cuda/pooled_wgrad_kernels.h"

namespace histocnn::cuda {
namespace {

// The tile's shared memory: 32 input planes, then a float and a uint16 per
// term of each of `outs` output channels.
size_t tile_shared_bytes(const PooledWgradPlan& p, int outs) {
  return size_t(p.term_floats_offset()) * sizeof(float) +
         size_t(outs) * size_t(p.terms()) * (sizeof(float) + sizeof(uint16_t));
}
// The most output channels a block takes (4 a warp): tiles and bands are
// sized for it whatever the block takes, so that every variant sums the same
// terms into the same rows in the same order — the same bits.
constexpr int kMostOutsPerBlock = kPooledWgradWarps * 4;

// tile_rows x tile_cols pooled positions: the input they stage.
void size_tile(PooledWgradPlan& p, int rows, int cols) {
  p.tile_rows = rows, p.tile_cols = cols;
  p.tile_h = rows * p.pool + p.kernel - 1;
  p.tile_w = cols * p.pool + p.kernel - 1;
  p.plane = p.tile_h * p.tile_w | 1;  // odd: lane l's reads fall in bank (l * plane + k) % 32
}

// The tile that stages the fewest input elements per pooled position of
// the map (the halo and the last chunk's unused columns counted), within
// the shared-memory limit; false when not even one position fits.
bool choose_tile(PooledWgradPlan& p, int pooled_h, int pooled_w) {
  double best = -1;
  int best_rows = 0, best_cols = 0;
  for (int rows = 1; rows <= std::min(8, pooled_h); ++rows) {
    int cols = pooled_w;
    for (; cols > 0; --cols) {
      size_tile(p, rows, cols);
      if (tile_shared_bytes(p, kMostOutsPerBlock) <= kPooledWgradSharedLimit) break;
    }
    if (cols == 0) continue;
    const int chunks = (pooled_w + cols - 1) / cols;
    cols = (pooled_w + chunks - 1) / chunks;  // the same chunks, evened out
    size_tile(p, rows, cols);
    const double staged = double((pooled_h + rows - 1) / rows) * chunks * p.tile_h * p.tile_w;
    const double per_position = double(pooled_h) * pooled_w / staged;
    if (per_position > best) best = per_position, best_rows = rows, best_cols = cols;
  }
  if (best < 0) return false;
  size_tile(p, best_rows, best_cols);
  return true;
}

}  // namespace

PooledWgradPlan plan_pooled_wgrad(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                                  int outs_per_warp, int target_blocks, bool channels_last) {
  PooledWgradPlan p;
  p.channels_last = channels_last;
  p.kernel = kernel, p.pad = pad, p.pool = pool, p.outs_per_warp = outs_per_warp;
  const int pooled_h = pool > 0 ? y.h / pool : 0, pooled_w = pool > 0 ? y.w / pool : 0;
  if (!pooled_wgrad_supported(kernel, pool) ||
      !pooled_wgrad_outs_supported(kernel, outs_per_warp) || y.h + kernel - 1 != x.h + 2 * pad ||
      y.w + kernel - 1 != x.w + 2 * pad || y.n != x.n || y.n < 1 || x.c < 1 || y.c < 1 ||
      pooled_h < 1 || pooled_w < 1)
    return p;
  if (!choose_tile(p, pooled_h, pooled_w)) return p;
  p.column_chunks = (pooled_w + p.tile_cols - 1) / p.tile_cols;
  p.out_groups = (y.c + p.outs_per_block() - 1) / p.outs_per_block();
  p.channel_groups = (x.c + kPooledWgradLanes - 1) / kPooledWgradLanes;
  // Bands down the map until about target_blocks blocks run at one output
  // channel a warp (the same bands for every variant).
  const int tiles = (pooled_h + p.tile_rows - 1) / p.tile_rows;
  const int finest_groups = (y.c + kPooledWgradWarps - 1) / kPooledWgradWarps;
  const int64_t per_band = int64_t(y.n) * p.column_chunks * finest_groups * p.channel_groups;
  const int64_t wanted = (std::max(target_blocks, 1) + per_band - 1) / per_band;
  p.band_tiles = int((tiles + std::clamp<int64_t>(wanted, 1, tiles) - 1) /
                     std::clamp<int64_t>(wanted, 1, tiles));
  p.bands = (tiles + p.band_tiles - 1) / p.band_tiles;
  p.taps = x.c * kernel * kernel;
  p.shared_bytes = tile_shared_bytes(p, p.outs_per_block());
  p.workspace_bytes = size_t(y.n) * size_t(p.bands) * size_t(p.column_chunks) * size_t(y.c) *
                      size_t(p.taps) * sizeof(float);
  p.applies = true;
  return p;
}

}  // namespace histocnn::cuda
