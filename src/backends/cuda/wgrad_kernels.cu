// The direct weight-gradient kernel of wgrad_kernels.h.
#include <cuda_runtime.h>

#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/wgrad_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = 256;

template <int C, int K, typename T>
__global__ void __launch_bounds__(kThreads)
    small_wgrad_kernel(const T* x, const T* dy, float* partials, Dims4 xd, Dims4 yd, int pad,
                       int rows_per_band, int bands, bool channels_last) {
  constexpr int kTaps = C * K * K;
  extern __shared__ float tile[];  // C x tile_h x tile_w: the band's input rows, padded
  const int band = int(blockIdx.x), n = int(blockIdx.y);
  const int y0 = band * rows_per_band;
  const int rows = min(rows_per_band, yd.h - y0);
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  const MapLayout xl{C, xd.h, xd.w, channels_last}, yl{yd.c, yd.h, yd.w, channels_last};
  for (int i = int(threadIdx.x); i < C * tile_h * tile_w; i += kThreads) {
    const TileSlot s = tile_slot(i, C, tile_h, tile_w, channels_last);
    tile[(s.c * tile_h + s.ty) * tile_w + s.tx] =
        padded_map_at(x, xl, n, s.c, y0 + s.ty - pad, s.tx - pad);
  }
  __syncthreads();
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  const int positions = rows * yd.w;
  for (int o = warp; o < yd.c; o += kThreads / 32) {
    float acc[kTaps];
#pragma unroll
    for (int t = 0; t < kTaps; ++t) acc[t] = 0;
    // The band's rows: contiguous channels first; channels last, position q
    // of channel o is q * C_out further on.
    const T* g = dy + yl.at(n, o, y0, 0);
    const int64_t step = yl.col_stride();
    for (int q = lane; q < positions; q += 32) {
      const int ty = q / yd.w, tx = q - ty * yd.w;
      wgrad_accumulate<C, K>(tile, tile_h, tile_w, ty, tx, load(g, q * step), acc);
    }
#pragma unroll
    for (int t = 0; t < kTaps; ++t)
      for (int offset = 16; offset > 0; offset /= 2)
        acc[t] += __shfl_down_sync(0xffffffffu, acc[t], offset);
    if (lane == 0) {
      float* row = partials + ((int64_t(n) * bands + band) * yd.c + o) * kTaps;
#pragma unroll
      for (int t = 0; t < kTaps; ++t) row[t] = acc[t];
    }
  }
}

template <int C, int K, typename T>
void launch(const T* x, const T* dy, float* workspace, const Dims4& xd, const Dims4& yd, int pad,
            const SmallWgradPlan& plan, cudaStream_t stream) {
  small_wgrad_kernel<C, K, T>
      <<<dim3(unsigned(plan.bands), unsigned(yd.n)), kThreads, plan.shared_bytes, stream>>>(
          x, dy, workspace, xd, yd, pad, plan.rows_per_band, plan.bands, plan.channels_last);
}

template <typename T>
void small_wgrad(const T* x, const T* dy, float* dw, float* workspace, const Dims4& xd,
                 const Dims4& yd, int kernel, int pad, const SmallWgradPlan& plan, Stream stream) {
  require(plan.applies && small_wgrad_supported(xd.c, kernel),
          "launch_small_wgrad: the layer is not one the kernel was compiled for");
  auto* s = static_cast<cudaStream_t>(stream);
  if (kernel == 3)
    launch<3, 3>(x, dy, workspace, xd, yd, pad, plan, s);
  else
    launch<3, 5>(x, dy, workspace, xd, yd, pad, plan, s);
  launch_column_sums(workspace, yd.n * plan.bands, yd.c * plan.taps, dw, stream);
}

}  // namespace

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
