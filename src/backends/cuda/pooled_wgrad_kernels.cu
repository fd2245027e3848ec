// The many-channel pooled weight-gradient kernel of pooled_wgrad_kernels.h.
#include <cuda_runtime.h>

#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/pooled_wgrad_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = kPooledWgradWarps * kPooledWgradLanes;

// Block (band * chunks + chunk, n, out_group * channel_groups +
// channel_group): for each tile of its band, stage the input and the terms,
// then each lane adds its input channel's products for the warp's output
// channels, term by term in the tile's order.
template <int K, int OPW, typename T>
__global__ void __launch_bounds__(kThreads)
    pooled_wgrad_kernel(const T* x, const T* d_pooled, const uint8_t* argmax, float* partials,
                        Dims4 xd, Dims4 yd, MapLayout pl, PooledWgradPlan p) {
  constexpr int kTaps = K * K;
  extern __shared__ float shared[];
  float* tile = shared;
  float* g = shared + p.term_floats_offset();
  auto* patch_at = reinterpret_cast<uint16_t*>(g + p.outs_per_block() * p.terms());
  const PooledWgradBlock b =
      pooled_wgrad_block(p, int(blockIdx.x), int(blockIdx.y), int(blockIdx.z));
  const int lane = int(threadIdx.x) % kPooledWgradLanes,
            warp = int(threadIdx.x) / kPooledWgradLanes;
  const int o0 = b.out_group * p.outs_per_block(), c0 = b.channel_group * kPooledWgradLanes;
  const MapLayout xl{xd.c, xd.h, xd.w, p.channels_last};
  float acc[OPW * kTaps];
#pragma unroll
  for (int t = 0; t < OPW * kTaps; ++t) acc[t] = 0;
  const int tiles = pooled_wgrad_band_tiles(p, pl.h, b.band);
  for (int t = 0; t < tiles; ++t) {
    const PooledWgradTile tl = pooled_wgrad_tile(p, b, t);
    __syncthreads();  // the previous tile's reads are done
    for (int i = int(threadIdx.x); i < kPooledWgradLanes * p.tile_h * p.tile_w; i += kThreads)
      stage_pooled_wgrad_input(x, xl, b.n, c0, tl.py0 * p.pool - p.pad, tl.px0 * p.pool - p.pad, p,
                               i, tile);
    for (int i = int(threadIdx.x); i < p.outs_per_block() * p.terms(); i += kThreads)
      stage_pooled_wgrad_term(d_pooled, argmax, pl, b.n, o0, tl.py0, tl.px0, p, i, g, patch_at);
    __syncthreads();
    const float* plane = tile + lane * p.plane;
    for (int q = 0; q < p.terms(); ++q)
#pragma unroll
      for (int j = 0; j < OPW; ++j) {
        const int slot = (warp * OPW + j) * p.terms() + q;
        const float gradient = g[slot];  // the same for the warp's lanes: a uniform branch
        if (gradient != 0.0f)
          pooled_wgrad_accumulate<K>(plane + patch_at[slot], p.tile_w, gradient, acc + j * kTaps);
      }
  }
  const int c = c0 + lane;
  if (c >= xd.c) return;
  float* row = partials + pooled_wgrad_row(p, b) * int64_t(yd.c) * p.taps;
#pragma unroll
  for (int j = 0; j < OPW; ++j) {
    const int o = o0 + warp * OPW + j;
    if (o >= yd.c) break;
#pragma unroll
    for (int t = 0; t < kTaps; ++t) row[(int64_t(o) * xd.c + c) * kTaps + t] = acc[j * kTaps + t];
  }
}

template <int K, int OPW, typename T>
void launch(const T* x, const T* d_pooled, const uint8_t* argmax, float* workspace, const Dims4& xd,
            const Dims4& yd, const MapLayout& pl, const PooledWgradPlan& p, cudaStream_t stream) {
  const dim3 grid(unsigned(p.bands * p.column_chunks), unsigned(yd.n),
                  unsigned(p.out_groups * p.channel_groups));
  pooled_wgrad_kernel<K, OPW, T>
      <<<grid, kThreads, p.shared_bytes, stream>>>(x, d_pooled, argmax, workspace, xd, yd, pl, p);
}

template <typename T>
void pooled_wgrad(const T* x, const T* d_pooled, const uint8_t* argmax, float* dw, float* workspace,
                  const Dims4& xd, const Dims4& yd, bool pooled_channels_last,
                  const PooledWgradPlan& p, Stream stream) {
  require(p.applies && pooled_wgrad_supported(p.kernel, p.pool) &&
              pooled_wgrad_outs_supported(p.kernel, p.outs_per_warp),
          "launch_pooled_wgrad: the layer is not one the kernel was compiled for");
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(p.channels_last), pooled_channels_last, p.pool}.pooled();
  auto* s = static_cast<cudaStream_t>(stream);
  if (p.kernel == 3 && p.outs_per_warp == 4)
    launch<3, 4>(x, d_pooled, argmax, workspace, xd, yd, pl, p, s);
  else if (p.kernel == 3 && p.outs_per_warp == 2)
    launch<3, 2>(x, d_pooled, argmax, workspace, xd, yd, pl, p, s);
  else if (p.kernel == 3)
    launch<3, 1>(x, d_pooled, argmax, workspace, xd, yd, pl, p, s);
  else if (p.outs_per_warp == 2)
    launch<5, 2>(x, d_pooled, argmax, workspace, xd, yd, pl, p, s);
  else
    launch<5, 1>(x, d_pooled, argmax, workspace, xd, yd, pl, p, s);
  const int rows = yd.n * p.bands * p.column_chunks;
  launch_column_sums(workspace, rows, yd.c * p.taps, dw, stream);
}

}  // namespace

void launch_pooled_wgrad(const float* x, const float* d_pooled, const uint8_t* argmax, float* dw,
                         float* workspace, const Dims4& xd, const Dims4& yd,
                         bool pooled_channels_last, const PooledWgradPlan& plan, Stream stream) {
  pooled_wgrad(x, d_pooled, argmax, dw, workspace, xd, yd, pooled_channels_last, plan, stream);
}
void launch_pooled_wgrad(const Bf16* x, const Bf16* d_pooled, const uint8_t* argmax, float* dw,
                         float* workspace, const Dims4& xd, const Dims4& yd,
                         bool pooled_channels_last, const PooledWgradPlan& plan, Stream stream) {
  pooled_wgrad(x, d_pooled, argmax, dw, workspace, xd, yd, pooled_channels_last, plan, stream);
}

}  // namespace histocnn::cuda
