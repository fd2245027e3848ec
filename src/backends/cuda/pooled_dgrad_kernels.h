// The data gradient of a conv block after the first (conv2, conv3 of the
// paper's network), our own kernel, from the pooled gradient.
//
// Why: with the bias and ReLU after the max (our pool kernels), the conv
// output's gradient is zero except at each window's maximum, where it is
// the pooled gradient (zero where the pooled value is not positive, which
// the argmax byte says: core/argmax_byte.h). cuDNN's
// data gradient reads that gradient in full, so a pool backward must first
// write it (60 MB for conv2 at 200x200, batch 50, three quarters zeros); from
// the pooled gradient and argmax, no pool backward writes anything
// but the bias sums, and the data gradient takes a quarter of the terms.
//
//   dx[n, c, y, x] = sum over o and windows (wy, wx) whose maximum (Y, X)
//                    has a positive pooled value (its argmax byte not
//                    flagged), with r = y - Y + pad and
//                    s = x - X + pad inside the kernel:
//                    w[o, c, r, s] * d_pooled[n, o, wy, wx]
//
// A lane is an input channel c; a warp owns a tile of dx, TW x TW pool
// windows' pixels (tile_px = TW * pool square, past the last whole window
// too), its sums in registers. For each output channel o the lane loads its
// K*K weights, then the warp walks the windows whose maxima can reach the
// tile: the term (gradient, argmax) is the same for all lanes, so a zero
// term is skipped by the whole warp, and the argmax picks, by a uniform
// branch, one of pool*pool unrolled bodies whose K*K FMAs land at constant
// places in the tile (the ones that fall outside it are left out at compile
// time). Every dx element is written once, by the warp whose tile holds it:
// no zeroing, no atomics.
//
// Each element's sum runs over o, then the windows in row-major order, one
// tap per window: the same order whatever the tile size, so every tile size
// gives the same bits (the step times both and keeps the faster).
//
// The arithmetic is the __host__ __device__ functions below, the plan a plain
// function: tests/test_cuda_pooled_dgrad.cpp runs them lane by lane against
// reference::conv2d_backward.
#pragma once

#include <cstdint>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "backends/cuda/map_layout.h"
#include "core/argmax_byte.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

constexpr int kPooledDgradLanes = 32;  // a warp: 32 input channels
constexpr int kPooledDgradWarps = 4;   // a block: 4 tiles side by side along a row

// The instantiations compiled: 2x2 pools, kernel 3 or 5, 'valid' (pad 0) or
// 'same' (pad kernel/2) convolutions; tiles of 2x2 or 4x4 windows.
constexpr bool pooled_dgrad_supported(int kernel, int pad, int pool) {
  return (kernel == 3 || kernel == 5) && pool == 2 && (pad == 0 || pad == kernel / 2);
}
constexpr bool pooled_dgrad_tile_supported(int tile_windows) {
  return tile_windows == 2 || tile_windows == 4;
}
// The name metrics.json records: HISTOCNN_POOLED_DGRAD_2x2, _4x4 (windows a tile).
inline const char* pooled_dgrad_name(int tile_windows) {
  return tile_windows == 4 ? "HISTOCNN_POOLED_DGRAD_4x4" : "HISTOCNN_POOLED_DGRAD_2x2";
}

// How the kernel splits one layer (x: its input, whose gradient it writes;
// y: its conv output, before the pool), or why not (`applies` false).
struct PooledDgradPlan {
  bool applies = false;
  bool channels_last = false;  // x, y and the filters (KRSC); pooled maps passed apart
  int kernel = 0, pad = 0, pool = 0;
  int tile_windows = 0;  // TW: a tile is TW x TW windows' pixels
  int tiles_y = 0, tiles_x = 0;
  int channel_groups = 0;  // of 32 input channels
  int out_c = 0;
  HISTOCNN_HD int tile_px() const { return tile_windows * pool; }
  // Blocks: grid x = blocks_x (4 tiles each), y = tiles_y, z = images * channel_groups.
  HISTOCNN_HD int blocks_x() const { return (tiles_x + kPooledDgradWarps - 1) / kPooledDgradWarps; }
};

// `applies` is false for a layer the kernel was not compiled for
// (pooled_dgrad_supported), a tile size it was not, dims that do not chain
// (y = conv_output_dims(x, ...)), or a grid past CUDA's limits.
PooledDgradPlan plan_pooled_dgrad(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                                  int tile_windows, bool channels_last = false);

// floor(a / b) for b > 0, in constant expressions.
constexpr int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// One instantiation's geometry: windows dy, dx in [first, last] relative to
// the tile's first window can hold a maximum that reaches the tile.
template <int K, int P, int PAD, int TW>
struct PooledDgradShape {
  static constexpr int kTilePx = TW * P;
  static constexpr int kFirstWindow = floor_div(-(K - 1 - PAD), P);
  static constexpr int kLastWindow = floor_div(kTilePx - 1 + PAD, P);
};

// Lane c's weights w[o, c, r, s] (zero past the last input channel): the
// filters OIHW, or KRSC when channels last.
template <int K, typename T>
HISTOCNN_HD_INLINE void pooled_dgrad_weights(const T* w, const MapLayout& filters, int o, int c,
                                             float* lane_w) {
  HISTOCNN_DEVICE_UNROLL
  for (int r = 0; r < K; ++r) {
    HISTOCNN_DEVICE_UNROLL
    for (int s = 0; s < K; ++s)
      lane_w[r * K + s] = c < filters.c ? load(w, filters.at(o, c, r, s)) : 0.0f;
  }
}

// The K*K products of one term whose maximum sits at (YR, XR) relative to
// the tile's first pixel, those that land inside the tile.
template <int K, int PAD, int TP, int YR, int XR>
HISTOCNN_HD_INLINE void pooled_dgrad_scatter(float g, const float* lane_w, float* acc) {
  HISTOCNN_DEVICE_UNROLL
  for (int r = 0; r < K; ++r) {
    const int row = YR + r - PAD;
    if (row < 0 || row >= TP) continue;
    HISTOCNN_DEVICE_UNROLL
    for (int s = 0; s < K; ++s) {
      const int col = XR + s - PAD;
      if (col >= 0 && col < TP)
        acc[row * TP + col] = fmaf(g, lane_w[r * K + s], acc[row * TP + col]);
    }
  }
}

// Window (DY, DX) of the tile (relative): its term, if any, into acc.
template <int K, int P, int PAD, int TP, int DY, int DX, typename T>
HISTOCNN_HD_INLINE void pooled_dgrad_window(const T* d_pooled, const uint8_t* argmax,
                                            const MapLayout& pl, int n, int o, int wy0, int wx0,
                                            const float* lane_w, float* acc) {
  const int wy = wy0 + DY, wx = wx0 + DX;
  if (wy < 0 || wy >= pl.h || wx < 0 || wx >= pl.w) return;
  const int64_t j = pl.at(n, o, wy, wx);
  const uint8_t at = argmax[j];
  if (!argmax_passes(at)) return;  // the same for the warp's lanes: a uniform branch
  const float g = load(d_pooled, j);
  if (g == 0.0f) return;
  // One body per place of the maximum: constant places in acc.
  if (at == 0)
    pooled_dgrad_scatter<K, PAD, TP, DY * P, DX * P>(g, lane_w, acc);
  else if (at == 1)
    pooled_dgrad_scatter<K, PAD, TP, DY * P, DX * P + 1>(g, lane_w, acc);
  else if (at == P)
    pooled_dgrad_scatter<K, PAD, TP, DY * P + 1, DX * P>(g, lane_w, acc);
  else
    pooled_dgrad_scatter<K, PAD, TP, DY * P + 1, DX * P + 1>(g, lane_w, acc);
}

// The windows of one row DY, DX from FIRST to LAST (a compile-time loop).
template <int K, int P, int PAD, int TP, int DY, int DX, int LAST, typename T>
HISTOCNN_HD_INLINE void pooled_dgrad_row(const T* d_pooled, const uint8_t* argmax,
                                         const MapLayout& pl, int n, int o, int wy0, int wx0,
                                         const float* lane_w, float* acc) {
  pooled_dgrad_window<K, P, PAD, TP, DY, DX>(d_pooled, argmax, pl, n, o, wy0, wx0, lane_w, acc);
  if constexpr (DX < LAST)
    pooled_dgrad_row<K, P, PAD, TP, DY, DX + 1, LAST>(d_pooled, argmax, pl, n, o, wy0, wx0, lane_w,
                                                      acc);
}
// Rows DY to the shape's last: every window in row-major order.
template <int K, int P, int PAD, int TW, int DY, typename T>
HISTOCNN_HD_INLINE void pooled_dgrad_rows(const T* d_pooled, const uint8_t* argmax,
                                          const MapLayout& pl, int n, int o, int wy0, int wx0,
                                          const float* lane_w, float* acc) {
  using S = PooledDgradShape<K, P, PAD, TW>;
  pooled_dgrad_row<K, P, PAD, S::kTilePx, DY, S::kFirstWindow, S::kLastWindow>(
      d_pooled, argmax, pl, n, o, wy0, wx0, lane_w, acc);
  if constexpr (DY < S::kLastWindow)
    pooled_dgrad_rows<K, P, PAD, TW, DY + 1>(d_pooled, argmax, pl, n, o, wy0, wx0, lane_w, acc);
}

// Where a lane works: image n, input channel c, tile (tile_y, tile_x).
struct PooledDgradLane {
  int n, c, tile_y, tile_x;
};
// Block (bx, by, bz), warp, lane -> its work; tile_x may be past the last
// tile (the whole warp then has nothing to do).
HISTOCNN_HD PooledDgradLane pooled_dgrad_lane(const PooledDgradPlan& p, int bx, int by, int bz,
                                              int warp, int lane) {
  return {bz / p.channel_groups, (bz % p.channel_groups) * kPooledDgradLanes + lane, by,
          bx * kPooledDgradWarps + warp};
}

// A lane's whole work: its sums over every output channel, then its tile's
// pixels of dx (those inside the map; channel c past the last: nothing).
// pl: the pooled maps' layout; xl: x's (and dx's).
template <int K, int PAD, int TW, typename T>
HISTOCNN_HD_INLINE void pooled_dgrad_lane_sums(const T* d_pooled, const uint8_t* argmax, const T* w,
                                               T* dx, const MapLayout& pl, const MapLayout& xl,
                                               const PooledDgradPlan& p,
                                               const PooledDgradLane& at) {
  constexpr int P = 2;
  using S = PooledDgradShape<K, P, PAD, TW>;
  constexpr int TP = S::kTilePx;
  float acc[TP * TP];
  HISTOCNN_DEVICE_UNROLL
  for (int i = 0; i < TP * TP; ++i) acc[i] = 0.0f;
  const MapLayout filters{xl.c, K, K, p.channels_last};
  const int wy0 = at.tile_y * TW, wx0 = at.tile_x * TW;
  for (int o = 0; o < p.out_c; ++o) {
    float lane_w[K * K];
    pooled_dgrad_weights<K>(w, filters, o, at.c, lane_w);
    pooled_dgrad_rows<K, P, PAD, TW, S::kFirstWindow>(d_pooled, argmax, pl, at.n, o, wy0, wx0,
                                                      lane_w, acc);
  }
  if (at.c >= xl.c) return;
  const int y0 = at.tile_y * TP, x0 = at.tile_x * TP;
  HISTOCNN_DEVICE_UNROLL
  for (int row = 0; row < TP; ++row) {
    HISTOCNN_DEVICE_UNROLL
    for (int col = 0; col < TP; ++col)
      if (y0 + row < xl.h && x0 + col < xl.w)
        store(dx, xl.at(at.n, at.c, y0 + row, x0 + col), acc[row * TP + col]);
  }
}

// dx (x's layout, the maps' type) = the data gradient, from the pooled
// gradient and argmax as the pool kernels hold them (layout
// PoolMaps{yd.n, yd's layout, pooled_channels_last, pool}.pooled()) and the
// weights the forward read (OIHW, or KRSC channels last; the maps' type).
// Requires plan.applies. bf16: sums in fp32, rounded once.
void launch_pooled_dgrad(const float* d_pooled, const uint8_t* argmax, const float* w, float* dx,
                         const Dims4& xd, const Dims4& yd, bool pooled_channels_last,
                         const PooledDgradPlan& plan, Stream stream);
void launch_pooled_dgrad(const Bf16* d_pooled, const uint8_t* argmax, const Bf16* w, Bf16* dx,
                         const Dims4& xd, const Dims4& yd, bool pooled_channels_last,
                         const PooledDgradPlan& plan, Stream stream);

}  // namespace histocnn::cuda
