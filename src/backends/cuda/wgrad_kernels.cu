// The direct weight-gradient kernel of wgrad_kernels.h.
#include <cuda_runtime.h>

#include "backends/cuda/band_tile.cuh"
#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/wgrad_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = 256;

template <int C, int K, int OB, typename T>
__global__ void __launch_bounds__(kThreads)
    small_wgrad_kernel(const T* x, const T* dy, float* partials, Dims4 xd, Dims4 yd, int pad,
                       int rows_per_band, int bands, bool channels_last) {
  constexpr int kTaps = C * K * K;
  extern __shared__ float tile[];  // C x tile_h x tile_w: the band's input rows, padded
  const int band = int(blockIdx.x), n = int(blockIdx.y);
  const int y0 = band * rows_per_band;
  const int rows = min(rows_per_band, yd.h - y0);
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  const MapLayout yl{yd.c, yd.h, yd.w, channels_last};
  stage_band<C, K>(x, tile, xd, n, y0, rows, pad, channels_last);
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int positions = rows * yd.w;
  // The band's rows: contiguous channels first; channels last, position q
  // of channel o is q * C_out further on.
  const int64_t step = yl.col_stride();
  for (int o0 = warp * OB; o0 < yd.c; o0 += (kThreads / 32) * OB) {
    float acc[OB * kTaps];
#pragma unroll
    for (int t = 0; t < OB * kTaps; ++t) acc[t] = 0;
    const T* g[OB];  // channels past the last read the last one's and are not written
#pragma unroll
    for (int j = 0; j < OB; ++j) g[j] = dy + yl.at(n, min(o0 + j, yd.c - 1), y0, 0);
    for (int q = lane; q < positions; q += 32) {
      const int ty = q / yd.w, tx = q - ty * yd.w;
      if constexpr (OB == 1) {
        wgrad_accumulate<C, K>(tile, tile_h, tile_w, ty, tx, load(g[0], q * step), acc);
      } else {
        float values[OB];
#pragma unroll
        for (int j = 0; j < OB; ++j) values[j] = load(g[j], q * step);
        wgrad_accumulate_channels<C, K, OB>(tile, tile_h, tile_w, ty, tx, values, acc);
      }
    }
#pragma unroll
    for (int t = 0; t < OB * kTaps; ++t)
      for (int offset = 16; offset > 0; offset /= 2)
        acc[t] += __shfl_down_sync(0xffffffffu, acc[t], offset);
    if (lane == 0) {
#pragma unroll
      for (int j = 0; j < OB; ++j) {
        if (o0 + j >= yd.c) break;
        float* row = partials + ((int64_t(n) * bands + band) * yd.c + o0 + j) * kTaps;
#pragma unroll
        for (int t = 0; t < kTaps; ++t) row[t] = acc[j * kTaps + t];
      }
    }
  }
}

// From the pooled gradient: each warp takes output channels in turn, each
// lane pooled positions of the band (whole windows); a position adds its
// window maximum's patch times its gradient (pooled_wgrad_term), and the
// gradient itself to the bias sum.
template <int C, int K, typename T>
__global__ void __launch_bounds__(kThreads)
    small_wgrad_pooled_kernel(const T* x, const T* d_pooled, const uint8_t* argmax, float* partials,
                              float* bias_partials, Dims4 xd, Dims4 yd, MapLayout pl, int pool,
                              int pad, int rows_per_band, int bands, bool channels_last) {
  constexpr int kTaps = C * K * K;
  extern __shared__ float tile[];
  const int band = int(blockIdx.x), n = int(blockIdx.y);
  const int y0 = band * rows_per_band;
  const int rows = min(rows_per_band, pl.h * pool - y0);
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  stage_band<C, K>(x, tile, xd, n, y0, rows, pad, channels_last);
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int positions = rows / pool * pl.w;
  for (int o = warp; o < yd.c; o += kThreads / 32) {
    float acc[kTaps + 1];  // the taps, then the bias
#pragma unroll
    for (int t = 0; t <= kTaps; ++t) acc[t] = 0;
    const int64_t first = pl.at(n, o, y0 / pool, 0);
    for (int q = lane; q < positions; q += 32) {
      const int py = q / pl.w, px = q - py * pl.w;
      const int64_t j = first + py * pl.row_stride() + px * pl.col_stride();
      const PooledTerm term = pooled_wgrad_term(d_pooled, argmax, j, pool, py, px);
      wgrad_accumulate<C, K>(tile, tile_h, tile_w, term.ty, term.tx, term.g, acc);
      acc[kTaps] += term.g;
    }
#pragma unroll
    for (int t = 0; t <= kTaps; ++t)
      for (int offset = 16; offset > 0; offset /= 2)
        acc[t] += __shfl_down_sync(0xffffffffu, acc[t], offset);
    if (lane == 0) {
      const int64_t r = int64_t(n) * bands + band;
      float* row = partials + (r * yd.c + o) * kTaps;
#pragma unroll
      for (int t = 0; t < kTaps; ++t) row[t] = acc[t];
      bias_partials[r * yd.c + o] = acc[kTaps];
    }
  }
}

template <int C, int K, int OB, typename T>
void launch(const T* x, const T* dy, float* workspace, const Dims4& xd, const Dims4& yd, int pad,
            const SmallWgradPlan& plan, cudaStream_t stream) {
  small_wgrad_kernel<C, K, OB, T>
      <<<dim3(unsigned(plan.bands), unsigned(yd.n)), kThreads, plan.shared_bytes, stream>>>(
          x, dy, workspace, xd, yd, pad, plan.rows_per_band, plan.bands, plan.channels_last);
}

template <typename T>
void small_wgrad(const T* x, const T* dy, float* dw, float* workspace, const Dims4& xd,
                 const Dims4& yd, int kernel, int pad, const SmallWgradPlan& plan, Stream stream) {
  require(plan.applies && small_wgrad_supported(xd.c, kernel) &&
              small_wgrad_out_block_supported(kernel, plan.out_block),
          "launch_small_wgrad: the layer is not one the kernel was compiled for");
  auto* s = static_cast<cudaStream_t>(stream);
  if (kernel == 3 && plan.out_block == 4)
    launch<3, 3, 4>(x, dy, workspace, xd, yd, pad, plan, s);
  else if (kernel == 3 && plan.out_block == 2)
    launch<3, 3, 2>(x, dy, workspace, xd, yd, pad, plan, s);
  else if (kernel == 3)
    launch<3, 3, 1>(x, dy, workspace, xd, yd, pad, plan, s);
  else
    launch<3, 5, 1>(x, dy, workspace, xd, yd, pad, plan, s);
  launch_column_sums(workspace, yd.n * plan.bands, yd.c * plan.taps, dw, stream);
}

template <typename T>
void small_wgrad_pooled(const T* x, const T* d_pooled, const uint8_t* argmax, float* dw, float* db,
                        float* workspace, const Dims4& xd, const Dims4& yd,
                        bool pooled_channels_last, int kernel, int pad, const SmallWgradPlan& plan,
                        Stream stream) {
  require(
      plan.applies && plan.pool > 1 && plan.out_block == 1 && small_wgrad_supported(xd.c, kernel),
      "launch_small_wgrad_pooled: the layer is not one the kernel was compiled for");
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(plan.channels_last), pooled_channels_last, plan.pool}.pooled();
  auto* s = static_cast<cudaStream_t>(stream);
  const dim3 grid(unsigned(plan.bands), unsigned(yd.n));
  float* bias_partials = workspace + plan.bias_partials_offset();
  if (kernel == 3)
    small_wgrad_pooled_kernel<3, 3, T><<<grid, kThreads, plan.shared_bytes, s>>>(
        x, d_pooled, argmax, workspace, bias_partials, xd, yd, pl, plan.pool, pad,
        plan.rows_per_band, plan.bands, plan.channels_last);
  else
    small_wgrad_pooled_kernel<3, 5, T><<<grid, kThreads, plan.shared_bytes, s>>>(
        x, d_pooled, argmax, workspace, bias_partials, xd, yd, pl, plan.pool, pad,
        plan.rows_per_band, plan.bands, plan.channels_last);
  launch_column_sums(workspace, yd.n * plan.bands, yd.c * plan.taps, dw, stream);
  launch_column_sums(bias_partials, yd.n * plan.bands, yd.c, db, stream);
}

}  // namespace

void launch_small_wgrad_pooled(const float* x, const float* d_pooled, const uint8_t* argmax,
                               float* dw, float* db, float* workspace, const Dims4& xd,
                               const Dims4& yd, bool pooled_channels_last, int kernel, int pad,
                               const SmallWgradPlan& plan, Stream stream) {
  small_wgrad_pooled(x, d_pooled, argmax, dw, db, workspace, xd, yd, pooled_channels_last, kernel,
                     pad, plan, stream);
}
void launch_small_wgrad_pooled(const Bf16* x, const Bf16* d_pooled, const uint8_t* argmax,
                               float* dw, float* db, float* workspace, const Dims4& xd,
                               const Dims4& yd, bool pooled_channels_last, int kernel, int pad,
                               const SmallWgradPlan& plan, Stream stream) {
  small_wgrad_pooled(x, d_pooled, argmax, dw, db, workspace, xd, yd, pooled_channels_last, kernel,
                     pad, plan, stream);
}

void launch_small_wgrad(const float* x, const float* dy, float* dw, float* workspace,
                        const Dims4& xd, const Dims4& yd, int kernel, int pad,
                        const SmallWgradPlan& plan, Stream stream) {
  small_wgrad(x, dy, dw, workspace, xd, yd, kernel, pad, plan, stream);
}
void launch_small_wgrad(const Bf16* x, const Bf16* dy, float* dw, float* workspace, const Dims4& xd,
                        const Dims4& yd, int kernel, int pad, const SmallWgradPlan& plan,
                        Stream stream) {
  small_wgrad(x, dy, dw, workspace, xd, yd, kernel, pad, plan, stream);
}

}  // namespace histocnn::cuda
