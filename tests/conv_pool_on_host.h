// The fused convolution + pool forward kernel (conv_pool_kernels.cu) on the
// host: its blocks in grid order, each staging the band tile and the
// parameters, then its work items in thread order, through the same
// __host__ __device__ functions, so a host test sees the bits the GPU writes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/cuda/conv_pool_kernels.h"

namespace histocnn::cuda::on_host {

template <int C, int K, int P, int PX, typename T>
void conv_pool_block(const T* x, const float* w, const float* bias, T* pooled, uint8_t* argmax,
                     const Dims4& xd, const MapLayout& pl, int pad, const ConvPoolPlan& plan, int n,
                     int band) {
  constexpr int kTaps = C * K * K;
  const int py0 = band * plan.rows_per_band;
  const int rows = std::min(plan.rows_per_band, pl.h - py0);
  const int tile_h = rows * P + K - 1, tile_w = xd.w + 2 * pad;
  std::vector<float> tile(size_t(C * tile_h * tile_w));
  const MapLayout xl{C, xd.h, xd.w, plan.channels_last};
  for (int i = 0; i < C * tile_h * tile_w; ++i)
    stage_tile_element(x, xl, n, py0 * P, pad, tile_h, tile_w, i, tile.data());
  const int items = rows * ((pl.w + PX - 1) / PX) * plan.groups;
  for (int item = 0; item < items; ++item) {
    const ConvPoolItem at = conv_pool_item(item, rows, pl.w, PX);
    ConvPoolPatch<C, K, P, PX> patch;
    load_conv_pool_patch(tile.data(), tile_h, tile_w, at.row * P, at.px0 * P, patch);
    const int o_end = std::min(pl.c, (at.group + 1) * plan.channel_group);
    for (int o = at.group * plan.channel_group; o < o_end; ++o)
      for (int j = 0; j < PX && at.px0 + j < pl.w; ++j) {
        const WindowMax m = patch_window_max(patch, w + o * kTaps, j);
        const int64_t i = pl.at(n, o, py0 + at.row, at.px0 + j);
        write_pooled(pooled, argmax, i, m, bias, o);
      }
  }
}

// launch_conv_pool_forward on the host.
template <typename T>
void conv_pool_forward(const T* x, const float* w, const float* bias, T* pooled, uint8_t* argmax,
                       const Dims4& xd, const Dims4& yd, int kernel, int pad,
                       const ConvPoolPlan& plan) {
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(plan.channels_last), plan.pooled_channels_last, plan.pool}.pooled();
  for (int n = 0; n < xd.n; ++n)
    for (int band = 0; band < plan.bands; ++band)
      if (kernel == 3 && plan.positions == 2)
        conv_pool_block<3, 3, 2, 2>(x, w, bias, pooled, argmax, xd, pl, pad, plan, n, band);
      else if (kernel == 3)
        conv_pool_block<3, 3, 2, 1>(x, w, bias, pooled, argmax, xd, pl, pad, plan, n, band);
      else
        conv_pool_block<3, 5, 2, 1>(x, w, bias, pooled, argmax, xd, pl, pad, plan, n, band);
}

}  // namespace histocnn::cuda::on_host
