// The pooled data-gradient kernel of pooled_dgrad_kernels.h.
#include <cuda_runtime.h>

#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/pooled_dgrad_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = kPooledDgradWarps * kPooledDgradLanes;

// Block (tiles along a row, tile row, image * channel groups): warp w takes
// the block's w-th tile, lane l input channel l of the block's group.
template <int K, int PAD, int TW, typename T>
__global__ void __launch_bounds__(kThreads)
    pooled_dgrad_kernel(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx, MapLayout pl,
                        MapLayout xl, PooledDgradPlan p) {
  const int lane = int(threadIdx.x) % kPooledDgradLanes,
            warp = int(threadIdx.x) / kPooledDgradLanes;
  const PooledDgradLane at =
      pooled_dgrad_lane(p, int(blockIdx.x), int(blockIdx.y), int(blockIdx.z), warp, lane);
  if (at.tile_x >= p.tiles_x) return;  // the whole warp
  pooled_dgrad_lane_sums<K, PAD, TW>(d_pooled, argmax, w, dx, pl, xl, p, at);
}

template <int K, int PAD, int TW, typename T>
void launch(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx, const MapLayout& pl,
            const MapLayout& xl, int n, const PooledDgradPlan& p, cudaStream_t stream) {
  const dim3 grid(unsigned(p.blocks_x()), unsigned(p.tiles_y), unsigned(n * p.channel_groups));
  pooled_dgrad_kernel<K, PAD, TW, T>
      <<<grid, kThreads, 0, stream>>>(d_pooled, argmax, w, dx, pl, xl, p);
}

template <int K, int PAD, typename T>
void launch_tile(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx, const MapLayout& pl,
                 const MapLayout& xl, int n, const PooledDgradPlan& p, cudaStream_t stream) {
  if (p.tile_windows == 4)
    launch<K, PAD, 4>(d_pooled, argmax, w, dx, pl, xl, n, p, stream);
  else
    launch<K, PAD, 2>(d_pooled, argmax, w, dx, pl, xl, n, p, stream);
}

template <typename T>
void pooled_dgrad(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx, const Dims4& xd,
                  const Dims4& yd, bool pooled_channels_last, const PooledDgradPlan& p,
                  Stream stream) {
  require(p.applies && pooled_dgrad_supported(p.kernel, p.pad, p.pool) &&
              pooled_dgrad_tile_supported(p.tile_windows),
          "launch_pooled_dgrad: the layer is not one the kernel was compiled for");
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(p.channels_last), pooled_channels_last, p.pool}.pooled();
  const MapLayout xl = xd.layout(p.channels_last);
  auto* s = static_cast<cudaStream_t>(stream);
  if (p.kernel == 3 && p.pad == 0)
    launch_tile<3, 0>(d_pooled, argmax, w, dx, pl, xl, xd.n, p, s);
  else if (p.kernel == 3)
    launch_tile<3, 1>(d_pooled, argmax, w, dx, pl, xl, xd.n, p, s);
  else if (p.pad == 0)
    launch_tile<5, 0>(d_pooled, argmax, w, dx, pl, xl, xd.n, p, s);
  else
    launch_tile<5, 2>(d_pooled, argmax, w, dx, pl, xl, xd.n, p, s);
  check_launch("pooled data gradient");
}

}  // namespace

void launch_pooled_dgrad(const float* d_pooled, const uint8_t* argmax, const float* w, float* dx,
                         const Dims4& xd, const Dims4& yd, bool pooled_channels_last,
                         const PooledDgradPlan& plan, Stream stream) {
  pooled_dgrad(d_pooled, argmax, w, dx, xd, yd, pooled_channels_last, plan, stream);
}
void launch_pooled_dgrad(const Bf16* d_pooled, const uint8_t* argmax, const Bf16* w, Bf16* dx,
                         const Dims4& xd, const Dims4& yd, bool pooled_channels_last,
                         const PooledDgradPlan& plan, Stream stream) {
  pooled_dgrad(d_pooled, argmax, w, dx, xd, yd, pooled_channels_last, plan, stream);
}

}  // namespace histocnn::cuda
