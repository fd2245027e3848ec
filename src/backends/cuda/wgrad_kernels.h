// The weight gradient of the first convolution (3 input channels), our own
// direct kernel: cuDNN's deterministic choice for it (wgrad ALGO_1) took 2.17
// ms of a 7.36 ms step at 200x200, batch 50 on an H200, 30% of all kernel time,
// for 3.5 GFLOP. With 27 weights per filter the GEMM view (M = 32 filters,
// N = 27 taps, K = N*H*W = 2M) is all K: tensor-core tiles stay empty and the
// work is a reduction, so a direct kernel reads the input once and the output
// gradient once instead.
//
//   dW[o, c, r, s] = sum over n, y, x of dy[n, o, y, x] * x[n, c, y + r - pad, x + s - pad]
//
// Layout of the work: a block takes one image's band of `rows_per_band`
// output rows; it stages the band's input rows (with the kernel's halo, zero
// padded) in shared memory; each warp takes output channels in turn (one, or
// `out_block` at once), each lane positions of the band, accumulating all
// C*K*K taps in registers; the warp sums its lanes and writes one row of
// partial sums [o, taps] per (image, band, channel). launch_column_sums then
// adds the rows in a fixed order straight into the gradient (OIHW, PyTorch's
// layout): deterministic.
//
// From the pooled gradient (`pool` > 1 in the plan): when the conv's output
// feeds a max pool with its bias and ReLU after the max (our pool kernels),
// its gradient is zero except at each window's maximum, where it is the
// pooled gradient (ReLU' taken on the pooled value, which the argmax byte
// carries: core/argmax_byte.h). The kernel then visits the pooled positions
// instead — a quarter of them at 2x2 — reading the pooled gradient and the
// argmax bytes, and the step skips writing
// the conv output's gradient at all (conv1 has no data gradient: nothing else
// reads it). Same sums, fewer terms: no zero products. The bias gradient is
// the sum of the same terms' gradients, so this kernel sums it too, and the
// block needs no pool backward at all.
//
// The arithmetic is the __host__ __device__ functions below; the plan is a
// plain function. Both are run by host tests against reference::conv2d_backward.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cuda/band_tile.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "core/argmax_byte.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

// acc[(c*K + r)*K + s] += g * tile[c][ty + r][tx + s]: one output-gradient
// element's contribution to every tap. `tile` is C planes of tile_h x tile_w
// (the band's input rows, padded), (ty, tx) the output position in the band.
// Full unrolling where it matters, on the device (the host compilers ignore it).
#if defined(__CUDA_ARCH__)
#define HISTOCNN_DEVICE_UNROLL _Pragma("unroll")
#else
#define HISTOCNN_DEVICE_UNROLL
#endif

template <int C, int K>
HISTOCNN_HD void wgrad_accumulate(const float* tile, int tile_h, int tile_w, int ty, int tx,
                                  float g, float* acc) {
  HISTOCNN_DEVICE_UNROLL
  for (int c = 0; c < C; ++c) HISTOCNN_DEVICE_UNROLL
  for (int r = 0; r < K; ++r) HISTOCNN_DEVICE_UNROLL
  for (int s = 0; s < K; ++s)
    acc[(c * K + r) * K + s] += g * tile[(c * tile_h + ty + r) * tile_w + tx + s];
}

// The register-blocked form: OB output channels at one output position
// (g: their OB output-gradient values; acc: OB rows of C*K*K sums). The
// position's C*K*K input values are read from the tile once and used OB
// times, where wgrad_accumulate reads them once per channel. Each channel's
// products are the same and added in the same order: the same bits.
template <int C, int K, int OB>
HISTOCNN_HD void wgrad_accumulate_channels(const float* tile, int tile_h, int tile_w, int ty,
                                           int tx, const float* g, float* acc) {
  constexpr int kTaps = C * K * K;
  float patch[kTaps];
  HISTOCNN_DEVICE_UNROLL
  for (int c = 0; c < C; ++c) HISTOCNN_DEVICE_UNROLL
  for (int r = 0; r < K; ++r) HISTOCNN_DEVICE_UNROLL
  for (int s = 0; s < K; ++s)
    patch[(c * K + r) * K + s] = tile[(c * tile_h + ty + r) * tile_w + tx + s];
  HISTOCNN_DEVICE_UNROLL
  for (int j = 0; j < OB; ++j) HISTOCNN_DEVICE_UNROLL
  for (int t = 0; t < kTaps; ++t) acc[j * kTaps + t] += g[j] * patch[t];
}

// How the kernel splits the work for one conv layer (x: its input, y: its
// output, both NCHW), or why it cannot take it.
struct SmallWgradPlan {
  bool applies = false;
  int rows_per_band = 0;    // output rows per block
  int bands = 0;            // blocks per image: ceil(y.h / rows_per_band)
  int tile_w = 0;           // x.w + 2 pad
  int taps = 0;             // in_c * kernel * kernel
  size_t shared_bytes = 0;  // the input band: in_c x (rows_per_band + kernel - 1) x tile_w floats
  // Partial sums: y.n * bands rows of y.c * taps floats; from the pooled
  // gradient, then as many rows of y.c bias sums (bias_partials_offset).
  size_t workspace_bytes = 0;
  bool channels_last = false;  // x and dy NHWC (--channels-last); the tile is staged either way
  // Output channels a warp accumulates at once (1, or 2 or 4 for kernel 3:
  // fewer shared-memory reads, more registers); the step times each on the
  // device.
  int out_block = 1;
  // > 1: from the pooled gradient of a pool x pool max pool (out_block 1;
  // rows_per_band a multiple of pool; the rows past the last whole window
  // have no gradient and no band).
  int pool = 1;
  // Where the bias sums' rows start in the workspace, in floats (pool > 1).
  size_t bias_partials_offset() const {
    return workspace_bytes / sizeof(float) - bias_partial_count;
  }
  size_t bias_partial_count = 0;  // y.n * bands * y.c (pool > 1), else 0
};

// One pooled position's term of the weight gradient: where in the band's
// tile the window's maximum was (ty, tx) and the gradient there (g, zero
// where the window's argmax byte is flagged: the pooled value is not
// positive). `j` is the pooled element's index in `d_pooled` and `argmax`;
// (py, px) its window in the band, of `pool` x `pool`.
struct PooledTerm {
  int ty, tx;
  float g;
};
template <typename T>
HISTOCNN_HD PooledTerm pooled_wgrad_term(const T* d_pooled, const uint8_t* argmax, int64_t j,
                                         int pool, int py, int px) {
  const int at = argmax_position(argmax[j]);
  const float g = argmax_passes(argmax[j]) ? load(d_pooled, j) : 0.0f;
  return {py * pool + at / pool, px * pool + at % pool, g};
}

// The kernels compiled: 3 input channels, kernel 3 or 5, stride 1.
constexpr bool small_wgrad_supported(int in_c, int kernel) {
  return in_c == 3 && (kernel == 3 || kernel == 5);
}
// The register blocks compiled: 1 always, 2 and 4 for kernel 3 (sm_90, no
// spills: 64, 110 and 187 registers a thread, so 4, 2 and 1 blocks of 256
// threads an SM — fewer shared-memory reads against fewer warps; which wins
// is timed on the device). 4 x 75 sums of kernel 5 would spill.
constexpr bool small_wgrad_out_block_supported(int kernel, int out_block) {
  return out_block == 1 || (kernel == 3 && (out_block == 2 || out_block == 4));
}
// The name metrics.json records: "HISTOCNN_DIRECT", or "HISTOCNN_DIRECT_2CH"
// and "_4CH" for two and four channels at once.
inline const char* small_wgrad_name(int out_block) {
  return out_block == 4   ? "HISTOCNN_DIRECT_4CH"
         : out_block == 2 ? "HISTOCNN_DIRECT_2CH"
                          : "HISTOCNN_DIRECT";
}
// The route's name in metrics.json: HISTOCNN_POOLED from the pooled gradient.
inline const char* small_wgrad_name(const SmallWgradPlan& plan) {
  return plan.pool > 1 ? "HISTOCNN_POOLED" : small_wgrad_name(plan.out_block);
}
constexpr size_t kSmallWgradSharedLimit = 48 * 1024;  // without opting in to more
constexpr int kSmallWgradMaxRows = 16;

// Bands sized so that about `target_blocks` blocks run (a few per SM) and the
// input band fits the shared-memory limit; `applies` is false when the layer
// is not one the kernel was compiled for or one input row does not fit.
SmallWgradPlan plan_small_wgrad(const Dims4& x, const Dims4& y, int kernel, int pad,
                                int target_blocks, bool channels_last = false);
// The same from the pooled gradient of a pool x pool max pool (2..8); not
// `applies` where the map holds no whole window.
SmallWgradPlan plan_small_wgrad_pooled(const Dims4& x, const Dims4& y, int kernel, int pad,
                                       int pool, int target_blocks, bool channels_last = false);

// dW (OIHW, y.c x x.c x kernel x kernel floats) = the weight gradient, through
// `workspace` (plan.workspace_bytes). Requires plan.applies. With bf16 x and
// dy (--precision bf16) dW is still summed and written in fp32.
void launch_small_wgrad(const float* x, const float* dy, float* dw, float* workspace,
                        const Dims4& xd, const Dims4& yd, int kernel, int pad,
                        const SmallWgradPlan& plan, Stream stream);
void launch_small_wgrad(const Bf16* x, const Bf16* dy, float* dw, float* workspace, const Dims4& xd,
                        const Dims4& yd, int kernel, int pad, const SmallWgradPlan& plan,
                        Stream stream);
// The same from the pooled gradient (plan.pool > 1): `d_pooled` and
// `argmax` as the pool kernels hold them (PoolMaps{yd.n, yd's layout,
// pooled_channels_last, plan.pool}.pooled()); db (y.c floats) = the conv
// bias gradient, from the same terms.
void launch_small_wgrad_pooled(const float* x, const float* d_pooled, const uint8_t* argmax,
                               float* dw, float* db, float* workspace, const Dims4& xd,
                               const Dims4& yd, bool pooled_channels_last, int kernel, int pad,
                               const SmallWgradPlan& plan, Stream stream);
void launch_small_wgrad_pooled(const Bf16* x, const Bf16* d_pooled, const uint8_t* argmax,
                               float* dw, float* db, float* workspace, const Dims4& xd,
                               const Dims4& yd, bool pooled_channels_last, int kernel, int pad,
                               const SmallWgradPlan& plan, Stream stream);

}  // namespace histocnn::cuda
