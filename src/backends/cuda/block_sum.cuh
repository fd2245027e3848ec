// The sum of one value per thread over a block, in a fixed order (a shuffle
// tree per warp, then the warps in order): deterministic, unlike atomics.
// tests/cuda_kernels_on_host.h (block_sum) runs the same order on the host.
#pragma once

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

}  // namespace histocnn::cuda
