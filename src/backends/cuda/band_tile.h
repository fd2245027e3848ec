// The band tile our direct convolution kernels stage in shared memory: the
// input rows one block's band of output rows reads, with the kernel's halo,
// zero padded, as C planes of tile_h x tile_w floats (whatever the map's type
// and layout). Used by the weight-gradient kernels (wgrad_kernels.h) and the
// fused convolution + pool forward (conv_pool_kernels.h); the device loop is
// band_tile.cuh, the host tests run the same functions in the same order.
#pragma once

#include <cstdint>

#include "backends/cuda/map_layout.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

// Element (y, x) of image n's channel c of a map in either layout, with zero
// padding outside it (T: float, or Bf16 under --precision bf16; the tile and
// the sums stay fp32).
template <typename T>
HISTOCNN_HD float padded_map_at(const T* map, const MapLayout& l, int n, int c, int y, int x) {
  return y >= 0 && y < l.h && x >= 0 && x < l.w ? load(map, l.at(n, c, y, x)) : 0.0f;
}

// Where element i of the band's staged input goes in the tile (C planes of
// tile_h x tile_w): the threads load in memory order — channels first a
// plane row at a time, channels last a pixel's channels at a time — so
// their reads coalesce either way.
struct TileSlot {
  int c, ty, tx;
};
HISTOCNN_HD TileSlot tile_slot(int i, int channels, int tile_h, int tile_w, bool channels_last) {
  if (channels_last) {
    const int pixel = i / channels;
    return {i - pixel * channels, pixel / tile_w, pixel % tile_w};
  }
  const int c = i / (tile_h * tile_w), rest = i - c * tile_h * tile_w;
  return {c, rest / tile_w, rest % tile_w};
}

// Stages element i (of C * tile_h * tile_w, in loading order) of image n's
// tile whose first row is the conv's output row y0, that is input row
// y0 - pad (xl: the input's channels, size and layout).
template <typename T>
HISTOCNN_HD void stage_tile_element(const T* x, const MapLayout& xl, int n, int y0, int pad,
                                    int tile_h, int tile_w, int i, float* tile) {
  const TileSlot s = tile_slot(i, xl.c, tile_h, tile_w, xl.channels_last);
  tile[(s.c * tile_h + s.ty) * tile_w + s.tx] =
      padded_map_at(x, xl, n, s.c, y0 + s.ty - pad, s.tx - pad);
}

}  // namespace histocnn::cuda
