// The first conv block's forward pass as one kernel of ours: the convolution
// of its 3 input channels, the max over each pool window, then the bias and
// ReLU after the max (as our pool kernels: max(ReLU(a + b)) = ReLU(max(a) + b)),
// writing the pooled map and each window's argmax byte (write_pooled: flagged
// where the pooled value is not positive). The conv output — 251
// MB at 200x200, batch 50, that cuDNN writes and our pool kernel reads back
// (conv1 forward was 0.459 ms of a step on an H200: gpu-h200.md) — never
// exists: the step's plan drops it (cuda_schedule.h, ConvRoutes).
//
// Floor at 200x200, batch 50: 24 MB read and 78 MB written (pooled fp32 and
// argmax), ~0.024 ms at 4.3 TB/s; 3.4 GFLOP of FMAs, ~0.05 ms at 67 TFLOP/s.
//
// Work: a block takes one image's band of `rows_per_band` pooled rows; it
// stages the band's input rows (band_tile.h) and the layer's weights and bias
// in shared memory. A thread takes `positions` (1 or 2) horizontally adjacent
// pooled positions and a group of output channels: it reads the positions'
// input patch into registers once, then per channel computes each window's
// P x P conv values (C*K*K products each, in (c, r, s) order, by fmaf: the
// host tests get the device's bits), keeps the first maximum in row-major
// window order (window_max's tie rule) and writes pooled_value and the byte.
// Consecutive threads take consecutive positions of one channel group: the
// stores coalesce (channels first) and the weight reads are broadcasts.
//
// The arithmetic is the __host__ __device__ functions below and the plan a
// plain function: tests/conv_pool_on_host.h runs them in the kernel's order
// against the reference convolution, ReLU and max pool.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/cuda/band_tile.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "backends/cuda/pool_kernels.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

#if defined(__CUDA_ARCH__)
#define HISTOCNN_CONV_POOL_UNROLL _Pragma("unroll")
#else
#define HISTOCNN_CONV_POOL_UNROLL
#endif

// A thread's input patch: C planes of the rows and columns its PX adjacent
// P x P windows of a K x K convolution read, from tile row ty0 and column
// tx0. Columns past the tile's width (the band's last odd position) are 0.
template <int C, int K, int P, int PX>
struct ConvPoolPatch {
  static constexpr int kRows = P + K - 1, kCols = PX * P + K - 1;
  float v[C * kRows * kCols];
};

template <int C, int K, int P, int PX>
HISTOCNN_HD void load_conv_pool_patch(const float* tile, int tile_h, int tile_w, int ty0, int tx0,
                                      ConvPoolPatch<C, K, P, PX>& patch) {
  using Patch = ConvPoolPatch<C, K, P, PX>;
  HISTOCNN_CONV_POOL_UNROLL
  for (int c = 0; c < C; ++c) HISTOCNN_CONV_POOL_UNROLL
  for (int r = 0; r < Patch::kRows; ++r) HISTOCNN_CONV_POOL_UNROLL
  for (int s = 0; s < Patch::kCols; ++s)
    patch.v[(c * Patch::kRows + r) * Patch::kCols + s] =
        tx0 + s < tile_w ? tile[(c * tile_h + ty0 + r) * tile_w + tx0 + s] : 0.0f;
}

// The conv output at window element (ky, kx) of the patch's position j, for
// one output channel's weights w (C*K*K, OIHW order): no bias (it follows
// the max).
template <int C, int K, int P, int PX>
HISTOCNN_HD float patch_conv_at(const ConvPoolPatch<C, K, P, PX>& patch, const float* w, int j,
                                int ky, int kx) {
  using Patch = ConvPoolPatch<C, K, P, PX>;
  float acc = 0.0f;
  HISTOCNN_CONV_POOL_UNROLL
  for (int c = 0; c < C; ++c) HISTOCNN_CONV_POOL_UNROLL
  for (int r = 0; r < K; ++r) HISTOCNN_CONV_POOL_UNROLL
  for (int s = 0; s < K; ++s)
    acc = fmaf(w[(c * K + r) * K + s],
               patch.v[(c * Patch::kRows + ky + r) * Patch::kCols + j * P + kx + s], acc);
  return acc;
}

// The maximum of position j's window and where it is (ky * P + kx of the
// first maximum in row-major order, as window_max).
template <int C, int K, int P, int PX>
HISTOCNN_HD WindowMax patch_window_max(const ConvPoolPatch<C, K, P, PX>& patch, const float* w,
                                       int j) {
  WindowMax m{-INFINITY, 0};
  HISTOCNN_CONV_POOL_UNROLL
  for (int ky = 0; ky < P; ++ky) HISTOCNN_CONV_POOL_UNROLL
  for (int kx = 0; kx < P; ++kx) {
    const float v = patch_conv_at(patch, w, j, ky, kx);
    if (v > m.value) m = {v, uint8_t(ky * P + kx)};
  }
  return m;
}

// Work item `item` of a band of `rows` pooled rows and `pooled_w` columns:
// which channel group, band row and first pooled column. Items run slot
// by slot within a group, so a warp's threads share the group.
struct ConvPoolItem {
  int group, row, px0;
};
HISTOCNN_HD ConvPoolItem conv_pool_item(int item, int rows, int pooled_w, int positions) {
  const int columns = (pooled_w + positions - 1) / positions;
  const int slots = rows * columns;
  const int group = item / slots, slot = item - group * slots;
  const int row = slot / columns;
  return {group, row, (slot - row * columns) * positions};
}

// How the kernel splits one layer's forward pass, or why it cannot.
struct ConvPoolPlan {
  bool applies = false;
  int pool = 0;
  int rows_per_band = 0;  // pooled rows per block
  int bands = 0;          // blocks per image: ceil(pooled rows / rows_per_band)
  int tile_w = 0;         // x.w + 2 pad
  int taps = 0;           // in_c * kernel * kernel
  int out_c = 0;
  // Output channels a thread takes per patch (kConvPoolChannelGroup by
  // default; the step also times all of them: fewer patch reads, fewer
  // threads); groups = ceil(out_c / channel_group).
  int channel_group = 0;
  int groups = 0;
  // Adjacent pooled positions a thread takes (1, or 2 for kernel 3: each
  // weight read serves twice the products, for more registers); the step
  // times each on the device.
  int positions = 1;
  size_t shared_bytes = 0;            // the tile, then out_c * taps weights and out_c biases
  bool channels_last = false;         // the input NHWC (--channels-last)
  bool pooled_channels_last = false;  // the pooled map's and argmax's layout
  // The band's work items: rows_per_band * ceil(pooled_w / positions) * groups.
  int items_per_band(int pooled_w) const {
    return rows_per_band * ((pooled_w + positions - 1) / positions) * groups;
  }
  // This plan with `group` output channels a thread (clamped to 1..out_c):
  // the same sums in the same order, so the same bits.
  ConvPoolPlan with_channel_group(int group) const {
    ConvPoolPlan p = *this;
    p.channel_group = group < 1 ? 1 : group > out_c ? out_c : group;
    p.groups = (out_c + p.channel_group - 1) / p.channel_group;
    return p;
  }
};

// The kernels compiled: 3 input channels, kernel 3 or 5, 2 x 2 pools,
// stride 1; two positions a thread for kernel 3 only (5's patch would spill).
constexpr bool conv_pool_supported(int in_c, int kernel, int pool) {
  return in_c == 3 && (kernel == 3 || kernel == 5) && pool == 2;
}
constexpr bool conv_pool_positions_supported(int kernel, int positions) {
  return positions == 1 || (kernel == 3 && positions == 2);
}
constexpr size_t kConvPoolSharedLimit = 48 * 1024;  // without opting in to more
constexpr int kConvPoolMaxRows = 8;                 // pooled rows per band
constexpr int kConvPoolChannelGroup = 8;
// The name metrics.json records: HISTOCNN_CONV_POOL, _2POS for two
// positions a thread, then the channels a thread takes ("_8CH").
inline std::string conv_pool_name(const ConvPoolPlan& plan) {
  return std::string("HISTOCNN_CONV_POOL") + (plan.positions == 2 ? "_2POS_" : "_") +
         std::to_string(plan.channel_group) + "CH";
}

// Bands sized so that about `target_blocks` blocks run and the tile, the
// weights and the biases fit the shared-memory limit; `applies` is false
// where the layer is not one the kernel was compiled for, the map holds no
// whole window, or one band row does not fit.
ConvPoolPlan plan_conv_pool(const Dims4& x, const Dims4& y, int kernel, int pad, int pool,
                            int target_blocks, bool channels_last = false,
                            bool pooled_channels_last = false);

// pooled = ReLU(max over each window of conv(x, w) + bias), argmax = where,
// both in the pooled map's layout (PoolMaps{yd.n, yd's layout,
// plan.pooled_channels_last, plan.pool}.pooled()). w: OIHW fp32 weights,
// bias fp32, whatever the maps' type (the master weights; bf16 maps are read
// and written as bf16, the sums in fp32). Requires plan.applies.
void launch_conv_pool_forward(const float* x, const float* w, const float* bias, float* pooled,
                              uint8_t* argmax, const Dims4& xd, const Dims4& yd, int kernel,
                              int pad, const ConvPoolPlan& plan, Stream stream);
void launch_conv_pool_forward(const Bf16* x, const float* w, const float* bias, Bf16* pooled,
                              uint8_t* argmax, const Dims4& xd, const Dims4& yd, int kernel,
                              int pad, const ConvPoolPlan& plan, Stream stream);

}  // namespace histocnn::cuda
