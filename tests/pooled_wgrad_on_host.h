// The many-channel pooled weight-gradient kernel (pooled_wgrad_kernels.cu)
// on the host: its blocks in grid order, each staging a tile's input and
// terms, then its threads' sums in the kernel's order (term by term, a
// warp's output channels, a lane's input channel), through the same
// __host__ __device__ functions, so a host test sees the bits the GPU writes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/cuda/pooled_wgrad_kernels.h"
#include "cuda_kernels_on_host.h"

namespace histocnn::cuda::on_host {

template <int K, typename T>
void pooled_wgrad_block(const T* x, const T* d_pooled, const uint8_t* argmax, float* partials,
                        const Dims4& xd, const Dims4& yd, const MapLayout& pl,
                        const PooledWgradPlan& p, const PooledWgradBlock& b) {
  constexpr int kTaps = K * K;
  const int threads = kPooledWgradWarps * kPooledWgradLanes;
  const int o0 = b.out_group * p.outs_per_block(), c0 = b.channel_group * kPooledWgradLanes;
  const MapLayout xl{xd.c, xd.h, xd.w, p.channels_last};
  std::vector<float> tile(size_t(p.term_floats_offset()));
  std::vector<float> g(size_t(p.outs_per_block() * p.terms()));
  std::vector<uint16_t> patch_at(g.size());
  // acc[thread][j * taps + t]
  std::vector<std::vector<float>> acc(size_t(threads),
                                      std::vector<float>(size_t(p.outs_per_warp * kTaps), 0.0f));
  const int tiles = pooled_wgrad_band_tiles(p, pl.h, b.band);
  for (int t = 0; t < tiles; ++t) {
    const PooledWgradTile tl = pooled_wgrad_tile(p, b, t);
    for (int i = 0; i < kPooledWgradLanes * p.tile_h * p.tile_w; ++i)
      stage_pooled_wgrad_input(x, xl, b.n, c0, tl.py0 * p.pool - p.pad, tl.px0 * p.pool - p.pad, p,
                               i, tile.data());
    for (int i = 0; i < int(g.size()); ++i)
      stage_pooled_wgrad_term(d_pooled, argmax, pl, b.n, o0, tl.py0, tl.px0, p, i, g.data(),
                              patch_at.data());
    for (int thread = 0; thread < threads; ++thread) {
      const int lane = thread % kPooledWgradLanes, warp = thread / kPooledWgradLanes;
      const float* plane = tile.data() + lane * p.plane;
      for (int q = 0; q < p.terms(); ++q)
        for (int j = 0; j < p.outs_per_warp; ++j) {
          const int slot = (warp * p.outs_per_warp + j) * p.terms() + q;
          if (g[size_t(slot)] != 0.0f)
            pooled_wgrad_accumulate<K>(plane + patch_at[size_t(slot)], p.tile_w, g[size_t(slot)],
                                       acc[size_t(thread)].data() + j * kTaps);
        }
    }
  }
  float* row = partials + pooled_wgrad_row(p, b) * int64_t(yd.c) * p.taps;
  for (int thread = 0; thread < threads; ++thread) {
    const int lane = thread % kPooledWgradLanes, warp = thread / kPooledWgradLanes;
    const int c = c0 + lane;
    if (c >= xd.c) continue;
    for (int j = 0; j < p.outs_per_warp; ++j) {
      const int o = o0 + warp * p.outs_per_warp + j;
      if (o >= yd.c) break;
      for (int t = 0; t < kTaps; ++t)
        row[(int64_t(o) * xd.c + c) * kTaps + t] = acc[size_t(thread)][size_t(j * kTaps + t)];
    }
  }
}

// launch_pooled_wgrad on the host: dw (OIHW).
template <typename T>
void pooled_wgrad(const T* x, const T* d_pooled, const uint8_t* argmax, float* dw, const Dims4& xd,
                  const Dims4& yd, bool pooled_channels_last, const PooledWgradPlan& p) {
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(p.channels_last), pooled_channels_last, p.pool}.pooled();
  std::vector<float> partials(p.workspace_bytes / sizeof(float));
  for (int bz = 0; bz < p.out_groups * p.channel_groups; ++bz)
    for (int by = 0; by < yd.n; ++by)
      for (int bx = 0; bx < p.bands * p.column_chunks; ++bx) {
        const PooledWgradBlock b = pooled_wgrad_block(p, bx, by, bz);
        if (p.kernel == 3)
          pooled_wgrad_block<3>(x, d_pooled, argmax, partials.data(), xd, yd, pl, p, b);
        else
          pooled_wgrad_block<5>(x, d_pooled, argmax, partials.data(), xd, yd, pl, p, b);
      }
  column_sums(partials.data(), yd.n * p.bands * p.column_chunks, yd.c * p.taps, dw);
}

}  // namespace histocnn::cuda::on_host
