// Reductions inside a block, in a fixed order (deterministic, unlike
// atomics): block_sum (a shuffle tree per warp, then the warps in order) and
// band_sums (channels-last per-channel sums over an image band).
// tests/cuda_kernels_on_host.h runs the same orders on the host.
#pragma once

#include "backends/cuda/map_layout.h"

namespace histocnn::cuda {

// Requires blockDim.x == Threads (a multiple of 32). The result is in thread
// 0. Safe to call repeatedly: it synchronises before reusing its scratch.
template <int Threads>
__device__ float block_sum(float v) {
  __shared__ float warp_sums[Threads / 32];
  __syncthreads();  // a previous call's thread 0 has read warp_sums
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = int(threadIdx.x) % 32, warp = int(threadIdx.x) / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0;
  if (threadIdx.x == 0)
    for (int k = 0; k < Threads / 32; ++k) total += warp_sums[k];
  return total;
}

// Channels-last per-channel sums over one image band (channel_sum_bands),
// for a grid of (n * bands, ceil(C / 32)) blocks of (32, 8) threads: lane
// threadIdx.x is channel blockIdx.y * 32 + lane (adjacent lanes, adjacent
// addresses), the 8 rows of threads take the band's pixels in turn (e, e + 8,
// ...), and the rows' sums are added in order. term(n, c, y, x) is what each
// element adds (it may also write that element). The band's sums are in the
// threads of row 0; the caller writes row blockIdx.x of its [rows, C]
// partial sums where channel < m.c.
template <typename Term>
__device__ SumPair band_sums(const MapLayout& m, int bands, Term term) {
  __shared__ float rows_a[8][33], rows_b[8][33];
  const int n = int(blockIdx.x) / bands, band = int(blockIdx.x) % bands;
  const int c = int(blockIdx.y) * 32 + int(threadIdx.x);
  const int64_t pixels = int64_t(m.h) * m.w;
  const int64_t per_band = (pixels + bands - 1) / bands;
  const int64_t end = min(pixels, (band + 1) * per_band);
  SumPair s;
  if (c < m.c)
    for (int64_t e = band * per_band + threadIdx.y; e < end; e += 8) {
      const int y = int(e / m.w), x = int(e - int64_t(y) * m.w);
      const SumPair t = term(n, c, y, x);
      s.a += t.a;
      s.b += t.b;
    }
  rows_a[threadIdx.y][threadIdx.x] = s.a;
  rows_b[threadIdx.y][threadIdx.x] = s.b;
  __syncthreads();
  SumPair total;
  if (threadIdx.y == 0)
    for (int k = 0; k < 8; ++k) {
      total.a += rows_a[k][threadIdx.x];
      total.b += rows_b[k][threadIdx.x];
    }
  return total;
}

}  // namespace histocnn::cuda
