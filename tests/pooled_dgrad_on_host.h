// The pooled data-gradient kernel (pooled_dgrad_kernels.cu) on the host: its
// grid's blocks, warps and lanes in order, each lane through the same
// __host__ __device__ function the kernel runs, so a host test sees the bits
// the GPU writes.
#pragma once

#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/pooled_dgrad_kernels.h"

namespace histocnn::cuda::on_host {

template <int K, int PAD, int TW, typename T>
void pooled_dgrad_grid(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx,
                       const MapLayout& pl, const MapLayout& xl, int n, const PooledDgradPlan& p) {
  for (int bz = 0; bz < n * p.channel_groups; ++bz)
    for (int by = 0; by < p.tiles_y; ++by)
      for (int bx = 0; bx < p.blocks_x(); ++bx)
        for (int warp = 0; warp < kPooledDgradWarps; ++warp)
          for (int lane = 0; lane < kPooledDgradLanes; ++lane) {
            const PooledDgradLane at = pooled_dgrad_lane(p, bx, by, bz, warp, lane);
            if (at.tile_x >= p.tiles_x) continue;
            pooled_dgrad_lane_sums<K, PAD, TW>(d_pooled, argmax, w, dx, pl, xl, p, at);
          }
}

template <int K, int PAD, typename T>
void pooled_dgrad_tile(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx,
                       const MapLayout& pl, const MapLayout& xl, int n, const PooledDgradPlan& p) {
  if (p.tile_windows == 4)
    pooled_dgrad_grid<K, PAD, 4>(d_pooled, argmax, w, dx, pl, xl, n, p);
  else
    pooled_dgrad_grid<K, PAD, 2>(d_pooled, argmax, w, dx, pl, xl, n, p);
}

// launch_pooled_dgrad on the host.
template <typename T>
void pooled_dgrad(const T* d_pooled, const uint8_t* argmax, const T* w, T* dx, const Dims4& xd,
                  const Dims4& yd, bool pooled_channels_last, const PooledDgradPlan& p) {
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(p.channels_last), pooled_channels_last, p.pool}.pooled();
  const MapLayout xl = xd.layout(p.channels_last);
  if (p.kernel == 3 && p.pad == 0)
    pooled_dgrad_tile<3, 0>(d_pooled, argmax, w, dx, pl, xl, xd.n, p);
  else if (p.kernel == 3)
    pooled_dgrad_tile<3, 1>(d_pooled, argmax, w, dx, pl, xl, xd.n, p);
  else if (p.pad == 0)
    pooled_dgrad_tile<5, 0>(d_pooled, argmax, w, dx, pl, xl, xd.n, p);
  else
    pooled_dgrad_tile<5, 2>(d_pooled, argmax, w, dx, pl, xl, xd.n, p);
}

}  // namespace histocnn::cuda::on_host
