// The fused convolution + pool forward kernel of conv_pool_kernels.h.
#include <cuda_runtime.h>

#include "backends/cuda/band_tile.cuh"
#include "backends/cuda/conv_pool_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = 256;

// The layer's weights (out_c x taps, OIHW) and biases into shared memory.
__device__ void stage_parameters(const float* w, const float* bias, float* weights, int count,
                                 int out_c) {
  for (int i = int(threadIdx.x); i < count; i += kThreads) weights[i] = w[i];
  for (int i = int(threadIdx.x); i < out_c; i += kThreads) weights[count + i] = bias[i];
}

template <int C, int K, int P, int PX, typename T>
__global__ void __launch_bounds__(kThreads)
    conv_pool_kernel(const T* x, const float* w, const float* bias, T* pooled, uint8_t* argmax,
                     Dims4 xd, MapLayout pl, int pad, int rows_per_band, int channel_group,
                     int groups, bool channels_last) {
  constexpr int kTaps = C * K * K;
  extern __shared__ float shared[];
  const int band = int(blockIdx.x), n = int(blockIdx.y);
  const int py0 = band * rows_per_band;
  const int rows = min(rows_per_band, pl.h - py0);
  const int tile_h = rows * P + K - 1, tile_w = xd.w + 2 * pad;
  float* tile = shared;
  float* weights = shared + C * (rows_per_band * P + K - 1) * tile_w;
  const float* biases = weights + pl.c * kTaps;
  stage_parameters(w, bias, weights, pl.c * kTaps, pl.c);
  stage_band<C, K>(x, tile, xd, n, py0 * P, rows * P, pad, channels_last);
  const int items = rows * ((pl.w + PX - 1) / PX) * groups;
  for (int item = int(threadIdx.x); item < items; item += kThreads) {
    const ConvPoolItem at = conv_pool_item(item, rows, pl.w, PX);
    ConvPoolPatch<C, K, P, PX> patch;
    load_conv_pool_patch(tile, tile_h, tile_w, at.row * P, at.px0 * P, patch);
    const int o_end = min(pl.c, (at.group + 1) * channel_group);
    for (int o = at.group * channel_group; o < o_end; ++o) {
#pragma unroll
      for (int j = 0; j < PX; ++j) {
        if (at.px0 + j >= pl.w) break;
        const WindowMax m = patch_window_max(patch, weights + o * kTaps, j);
        const int64_t i = pl.at(n, o, py0 + at.row, at.px0 + j);
        write_pooled(pooled, argmax, i, m, biases, o);
      }
    }
  }
}

template <int C, int K, int P, int PX, typename T>
void launch(const T* x, const float* w, const float* bias, T* pooled, uint8_t* argmax,
            const Dims4& xd, const MapLayout& pl, int pad, const ConvPoolPlan& plan,
            cudaStream_t stream) {
  conv_pool_kernel<C, K, P, PX, T>
      <<<dim3(unsigned(plan.bands), unsigned(xd.n)), kThreads, plan.shared_bytes, stream>>>(
          x, w, bias, pooled, argmax, xd, pl, pad, plan.rows_per_band, plan.channel_group,
          plan.groups, plan.channels_last);
}

template <typename T>
void conv_pool_forward(const T* x, const float* w, const float* bias, T* pooled, uint8_t* argmax,
                       const Dims4& xd, const Dims4& yd, int kernel, int pad,
                       const ConvPoolPlan& plan, Stream stream) {
  require(plan.applies && conv_pool_supported(xd.c, kernel, plan.pool) &&
              conv_pool_positions_supported(kernel, plan.positions),
          "launch_conv_pool_forward: the layer is not one the kernel was compiled for");
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(plan.channels_last), plan.pooled_channels_last, plan.pool}.pooled();
  auto* s = static_cast<cudaStream_t>(stream);
  if (kernel == 3 && plan.positions == 2)
    launch<3, 3, 2, 2>(x, w, bias, pooled, argmax, xd, pl, pad, plan, s);
  else if (kernel == 3)
    launch<3, 3, 2, 1>(x, w, bias, pooled, argmax, xd, pl, pad, plan, s);
  else
    launch<3, 5, 2, 1>(x, w, bias, pooled, argmax, xd, pl, pad, plan, s);
}

}  // namespace

void launch_conv_pool_forward(const float* x, const float* w, const float* bias, float* pooled,
                              uint8_t* argmax, const Dims4& xd, const Dims4& yd, int kernel,
                              int pad, const ConvPoolPlan& plan, Stream stream) {
  conv_pool_forward(x, w, bias, pooled, argmax, xd, yd, kernel, pad, plan, stream);
}
void launch_conv_pool_forward(const Bf16* x, const float* w, const float* bias, Bf16* pooled,
                              uint8_t* argmax, const Dims4& xd, const Dims4& yd, int kernel,
                              int pad, const ConvPoolPlan& plan, Stream stream) {
  conv_pool_forward(x, w, bias, pooled, argmax, xd, yd, kernel, pad, plan, stream);
}

}  // namespace histocnn::cuda
