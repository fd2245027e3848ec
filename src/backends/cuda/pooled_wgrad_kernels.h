// The weight gradient of a conv block with many input channels (conv2,
// conv3 of the paper's network), our own kernel, from the pooled gradient.
//
// Why: on an H200 at 200x200, batch 50, conv2's backward took 1.15 ms of a
// ~3.9 ms step (gpu-h200.md), cuDNN's heuristics choosing FFT for its weight
// gradient with a 486 MB workspace (189 MB for conv3's). When the conv's
// output feeds a 2x2 max pool with the bias and ReLU after the max (our pool
// kernels), its gradient is zero except at each window's maximum: a
// quarter of the terms cuDNN multiplies, fewer where ReLU is off.
//
//   dW[o, c, r, s] = sum over n and pooled positions p of o with a positive
//                    pooled value: d_pooled[n, o, p] * x[n, c, at(p) + (r, s) - pad]
//
// where at(p) is the window's maximum (argmax byte). Unlike conv1's
// (wgrad_kernels.h, 27 taps a lane) the taps are C*K*K (288 for conv2), too
// many for one thread's registers; and each output channel has its own
// maxima, so no two channels share a patch. So here a lane is an input
// channel: a block stages a tile of input (32 channels, the rows and columns
// under tile_rows x tile_cols pooled positions, with the halo, zero padded)
// and the tile's pooled gradient terms for 8 x outs_per_warp output
// channels; warp w takes output channels w*outs_per_warp.., lane l input
// channel l, and adds K*K products a term: each product a shared-memory read
// and an FMA, the K*K sums in registers. A warp's lanes share the term, so a
// zero term (ReLU off) is skipped by the whole warp: fmaf(0, v, a) is a for
// finite v, so skipping does not change the bits.
//
// The block's sums go to a row of partial sums [o, c, r, s] per (image,
// band of tiles, column chunk); launch_column_sums adds the rows in a fixed
// order into dW (OIHW): deterministic. The bias gradient is not summed here:
// the block's data gradient needs the pool backward anyway, which sums it.
//
// The arithmetic is the __host__ __device__ functions below and the plan a
// plain function: tests/pooled_wgrad_on_host.h runs them in the kernel's
// order, against reference::conv2d_backward.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "backends/cuda/band_tile.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "core/argmax_byte.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

constexpr int kPooledWgradWarps = 8;                   // a block: 8 warps of output channels
constexpr int kPooledWgradLanes = 32;                  // a warp: 32 input channels
constexpr size_t kPooledWgradSharedLimit = 48 * 1024;  // without opting in to more

// How the kernel splits one layer (x: its input, y: its conv output, before
// the pool), or why not (`applies` false).
struct PooledWgradPlan {
  bool applies = false;
  bool channels_last = false;  // x NHWC (the pooled maps' layout is passed apart)
  int kernel = 0, pad = 0, pool = 0;
  int outs_per_warp = 1;  // output channels a warp sums at once (1, 2, 4; 1, 2 for kernel 5)
  // A tile: tile_rows x tile_cols pooled positions; its input, 32 planes of
  // tile_h x tile_w floats `plane` floats apart (odd: the lanes' reads fall
  // in 32 different banks).
  int tile_rows = 0, tile_cols = 0;
  int tile_h = 0, tile_w = 0, plane = 0;
  // Blocks: grid x = bands * column_chunks, y = images, z = out_groups *
  // channel_groups. A band is band_tiles tiles down the map, a chunk
  // tile_cols pooled columns across it.
  int column_chunks = 0, bands = 0, band_tiles = 0;
  int out_groups = 0, channel_groups = 0;
  int taps = 0;  // in_c * kernel * kernel: a filter's weights
  size_t shared_bytes = 0;
  // Partial sums: images * bands * column_chunks rows of out_c * taps floats.
  size_t workspace_bytes = 0;
  HISTOCNN_HD int outs_per_block() const { return kPooledWgradWarps * outs_per_warp; }
  HISTOCNN_HD int terms() const { return tile_rows * tile_cols; }  // per output channel
  // Where the tile's terms go in shared memory, after the input planes: the
  // gradients (floats), then where each term's patch starts in a plane
  // (uint16: a plane holds at most 48 KB / 32 lanes / 4 bytes = 384 floats).
  HISTOCNN_HD int term_floats_offset() const { return kPooledWgradLanes * plane; }
};

// The kernels compiled: kernel 3 or 5, pools 2 to 8 (argmax fits a byte).
constexpr bool pooled_wgrad_supported(int kernel, int pool) {
  return (kernel == 3 || kernel == 5) && pool >= 2 && pool <= 8;
}
constexpr bool pooled_wgrad_outs_supported(int kernel, int outs_per_warp) {
  return outs_per_warp == 1 || outs_per_warp == 2 || (kernel == 3 && outs_per_warp == 4);
}
// The name metrics.json records: HISTOCNN_POOLED_BY_CHANNEL, _2OUT, _4OUT.
inline const char* pooled_wgrad_name(int outs_per_warp) {
  return outs_per_warp == 4   ? "HISTOCNN_POOLED_BY_CHANNEL_4OUT"
         : outs_per_warp == 2 ? "HISTOCNN_POOLED_BY_CHANNEL_2OUT"
                              : "HISTOCNN_POOLED_BY_CHANNEL";
}

// Tiles sized to the most pooled positions per staged input element within
// the shared-memory limit; bands so that about `target_blocks` blocks run.
// Tiles and bands do not depend on `outs_per_warp`: every variant sums the
// same terms in the same order into the same rows (the same bits), so the
// step may time them and keep the fastest.
// `applies` is false for a layer the kernels were not compiled for, one
// whose map holds no whole window, or one whose tile cannot fit.
PooledWgradPlan plan_pooled_wgrad(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                                  int outs_per_warp, int target_blocks, bool channels_last = false);

// One block's place in the grid.
struct PooledWgradBlock {
  int n, band, chunk, out_group, channel_group;
};
HISTOCNN_HD PooledWgradBlock pooled_wgrad_block(const PooledWgradPlan& p, int bx, int by, int bz) {
  return {by, bx / p.column_chunks, bx % p.column_chunks, bz / p.channel_groups,
          bz % p.channel_groups};
}

// Stages element i (of 32 * tile_h * tile_w, in loading order: channels
// first a plane row at a time, channels last a pixel's 32 channels at a
// time, so the threads' reads coalesce) of the tile whose first input
// element is (y0, x0) of image n, input channels c0..c0+31 (zero past the
// last channel and outside the map).
template <typename T>
HISTOCNN_HD void stage_pooled_wgrad_input(const T* x, const MapLayout& xl, int n, int c0, int y0,
                                          int x0, const PooledWgradPlan& p, int i, float* tile) {
  int c, pixel;
  if (xl.channels_last) {
    pixel = i / kPooledWgradLanes, c = i - pixel * kPooledWgradLanes;
  } else {
    c = i / (p.tile_h * p.tile_w), pixel = i - c * p.tile_h * p.tile_w;
  }
  const int row = pixel / p.tile_w, col = pixel - row * p.tile_w;
  tile[c * p.plane + row * p.tile_w + col] =
      c0 + c < xl.c ? padded_map_at(x, xl, n, c0 + c, y0 + row, x0 + col) : 0.0f;
}

// Stages term i (of outs_per_block * terms, output channel by output
// channel; a channel's terms row-major over the tile's pooled positions) of
// the tile whose first pooled position is (py0, px0): the gradient (zero
// where the argmax byte is flagged, the pooled value not positive, and for positions and channels
// past the map's) and where its patch starts in a staged plane: the
// window's maximum (argmax byte), worked out here once per block rather
// than by every lane.
template <typename T>
HISTOCNN_HD void stage_pooled_wgrad_term(const T* d_pooled, const uint8_t* argmax,
                                         const MapLayout& pl, int n, int o0, int py0, int px0,
                                         const PooledWgradPlan& p, int i, float* g,
                                         uint16_t* patch_at) {
  const int o = i / p.terms(), q = i - o * p.terms();
  const int ty = q / p.tile_cols, tx = q - ty * p.tile_cols;
  float value = 0.0f;
  int at = 0;
  if (o0 + o < pl.c && py0 + ty < pl.h && px0 + tx < pl.w) {
    const int64_t j = pl.at(n, o0 + o, py0 + ty, px0 + tx);
    value = argmax_passes(argmax[j]) ? load(d_pooled, j) : 0.0f;
    at = argmax_position(argmax[j]);
  }
  g[i] = value;
  patch_at[i] = uint16_t((ty * p.pool + at / p.pool) * p.tile_w + tx * p.pool + at % p.pool);
}

// One term's products into a lane's K*K sums: `patch` is where the term's
// patch starts in the lane's input channel's staged plane (tile_w floats a
// row), g its gradient.
template <int K>
HISTOCNN_HD void pooled_wgrad_accumulate(const float* patch, int tile_w, float g, float* acc) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < K; ++r)
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int s = 0; s < K; ++s) acc[r * K + s] = fmaf(g, patch[r * tile_w + s], acc[r * K + s]);
}

// The tile t of a band: its first pooled position; the conv's input element
// under its first staged element is (py0 * pool - pad, px0 * pool - pad).
struct PooledWgradTile {
  int py0, px0;
};
HISTOCNN_HD PooledWgradTile pooled_wgrad_tile(const PooledWgradPlan& p, const PooledWgradBlock& b,
                                              int t) {
  return {(b.band * p.band_tiles + t) * p.tile_rows, b.chunk * p.tile_cols};
}
// Tiles of band b that hold pooled rows (the last band may hold fewer).
HISTOCNN_HD int pooled_wgrad_band_tiles(const PooledWgradPlan& p, int pooled_h, int band) {
  const int tiles = (pooled_h + p.tile_rows - 1) / p.tile_rows - band * p.band_tiles;
  return tiles < p.band_tiles ? tiles : p.band_tiles;
}
// The partial-sum row of block b.
HISTOCNN_HD int64_t pooled_wgrad_row(const PooledWgradPlan& p, const PooledWgradBlock& b) {
  return (int64_t(b.n) * p.bands + b.band) * p.column_chunks + b.chunk;
}

// dW (OIHW, y.c x x.c x kernel x kernel floats) = the weight gradient, from
// the pooled gradient and argmax as the pool kernels hold them
// (PoolMaps{yd.n, yd's layout, pooled_channels_last, plan.pool}.pooled()),
// through `workspace` (plan.workspace_bytes). Requires plan.applies. bf16
// maps: the sums and dW in fp32.
void launch_pooled_wgrad(const float* x, const float* d_pooled, const uint8_t* argmax, float* dw,
                         float* workspace, const Dims4& xd, const Dims4& yd,
                         bool pooled_channels_last, const PooledWgradPlan& plan, Stream stream);
void launch_pooled_wgrad(const Bf16* x, const Bf16* d_pooled, const uint8_t* argmax, float* dw,
                         float* workspace, const Dims4& xd, const Dims4& yd,
                         bool pooled_channels_last, const PooledWgradPlan& plan, Stream stream);

}  // namespace histocnn::cuda
