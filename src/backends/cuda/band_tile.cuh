// The device loop of band_tile.h: a block stages its band's tile in shared
// memory, its threads striding over the elements in loading order, then
// waits for all of them.
#pragma once

#include "backends/cuda/band_tile.h"
#include "backends/cuda/cuda_schedule.h"

namespace histocnn::cuda {

// Image n's input rows for output rows [y0, y0 + rows) of a K x K kernel,
// padded by `pad`, into `tile` (C x (rows + K - 1) x (xd.w + 2 pad) floats).
template <int C, int K, typename T>
__device__ void stage_band(const T* x, float* tile, const Dims4& xd, int n, int y0, int rows,
                           int pad, bool channels_last) {
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  const MapLayout xl{C, xd.h, xd.w, channels_last};
  for (int i = int(threadIdx.x); i < C * tile_h * tile_w; i += int(blockDim.x))
    stage_tile_element(x, xl, n, y0, pad, tile_h, tile_w, i, tile);
  __syncthreads();
}

}  // namespace histocnn::cuda
