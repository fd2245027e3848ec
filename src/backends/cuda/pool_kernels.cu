// The max-pool kernels of pool_kernels.h: grids over its per-element functions.
#include <cuda_runtime.h>

#include "backends/cuda/block_sum.cuh"
#include "backends/cuda/pool_kernels.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = 256;
cudaStream_t as_stream(Stream s) {
  return static_cast<cudaStream_t>(s);
}

template <typename T>
__global__ void max_pool_forward_kernel(const T* act, const float* bias, T* pooled, uint8_t* argmax,
                                        int64_t total, int channels, PoolGeometry g) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= total) return;
  const int per_plane = g.pooled_h() * g.pooled_w();
  const int64_t plane = j / per_plane;
  const int at = int(j - plane * per_plane);
  const int oy = at / g.pooled_w(), ox = at - oy * g.pooled_w();
  const WindowMax m = window_max(act + plane * int64_t(g.h) * g.w, g, oy, ox);
  store(pooled, j, pooled_value(m.value, bias, int(plane % channels)));
  argmax[j] = m.at;
}

__global__ void bias_relu_kernel(Bf16* y, const float* bias, int64_t total, int channels,
                                 int64_t per_plane) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  store(y, i, pooled_value(load(y, i), bias, int((i / per_plane) % channels)));
}

// One block per plane: every element of d_act written once (coalesced), and
// the plane's sum for the bias gradient.
template <typename T>
__global__ void pool_relu_backward_kernel(const T* pooled, const T* d_pooled, const uint8_t* argmax,
                                          T* d_act, float* plane_sums, PoolGeometry g) {
  const int64_t plane = blockIdx.x;
  const int64_t pooled_offset = plane * g.pooled_h() * g.pooled_w();
  const T* p = pooled + pooled_offset;
  const T* dp = d_pooled + pooled_offset;
  const uint8_t* am = argmax ? argmax + pooled_offset : nullptr;
  T* out = d_act + plane * int64_t(g.h) * g.w;
  float sum = 0;
  for (int e = int(threadIdx.x); e < g.h * g.w; e += int(blockDim.x)) {
    const int y = e / g.w, x = e - y * g.w;
    const float v = pool_relu_backward_at(p, dp, am, g, y, x);
    store(out, e, v);  // in place when p == 1: this thread read element e just above
    sum += v;
  }
  if (!plane_sums) return;
  const float total = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) plane_sums[plane] = total;
}

// Block (32, 8): 32 adjacent columns, 8 stripes of rows; the stripes are
// added in order by the first row of threads.
__global__ void column_sums_kernel(const float* in, int rows, int cols, float* out) {
  __shared__ float stripes[8][33];
  const int j = int(blockIdx.x) * 32 + int(threadIdx.x);
  float s = 0;
  if (j < cols)
    for (int i = int(threadIdx.y); i < rows; i += 8) s += in[int64_t(i) * cols + j];
  stripes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y != 0 || j >= cols) return;
  float total = 0;
  for (int k = 0; k < 8; ++k) total += stripes[k][threadIdx.x];
  out[j] = total;
}

template <typename T>
void max_pool_forward(const T* act, const float* bias, T* pooled, uint8_t* argmax, int planes,
                      int channels, const PoolGeometry& g, Stream stream) {
  const int64_t total = int64_t(planes) * g.pooled_h() * g.pooled_w();
  if (total == 0) return;
  max_pool_forward_kernel<<<int((total + kThreads - 1) / kThreads), kThreads, 0,
                            as_stream(stream)>>>(act, bias, pooled, argmax, total, channels, g);
}

template <typename T>
void pool_relu_backward(const T* pooled, const T* d_pooled, const uint8_t* argmax, T* d_act,
                        float* plane_sums, int planes, const PoolGeometry& g, Stream stream) {
  if (planes == 0) return;
  pool_relu_backward_kernel<<<planes, kThreads, 0, as_stream(stream)>>>(pooled, d_pooled, argmax,
                                                                        d_act, plane_sums, g);
}

}  // namespace

void launch_max_pool_forward(const float* act, const float* bias, float* pooled, uint8_t* argmax,
                             int planes, int channels, const PoolGeometry& g, Stream stream) {
  max_pool_forward(act, bias, pooled, argmax, planes, channels, g, stream);
}
void launch_max_pool_forward(const Bf16* act, const float* bias, Bf16* pooled, uint8_t* argmax,
                             int planes, int channels, const PoolGeometry& g, Stream stream) {
  max_pool_forward(act, bias, pooled, argmax, planes, channels, g, stream);
}

void launch_pool_relu_backward(const float* pooled, const float* d_pooled, const uint8_t* argmax,
                               float* d_act, float* plane_sums, int planes, const PoolGeometry& g,
                               Stream stream) {
  pool_relu_backward(pooled, d_pooled, argmax, d_act, plane_sums, planes, g, stream);
}
void launch_pool_relu_backward(const Bf16* pooled, const Bf16* d_pooled, const uint8_t* argmax,
                               Bf16* d_act, float* plane_sums, int planes, const PoolGeometry& g,
                               Stream stream) {
  pool_relu_backward(pooled, d_pooled, argmax, d_act, plane_sums, planes, g, stream);
}

void launch_bias_relu(Bf16* y, const float* bias, int planes, int channels, int64_t per_plane,
                      Stream stream) {
  const int64_t total = int64_t(planes) * per_plane;
  if (total == 0) return;
  bias_relu_kernel<<<int((total + kThreads - 1) / kThreads), kThreads, 0, as_stream(stream)>>>(
      y, bias, total, channels, per_plane);
}

void launch_column_sums(const float* in, int rows, int cols, float* out, Stream stream) {
  if (cols == 0) return;
  column_sums_kernel<<<(cols + 31) / 32, dim3(32, 8), 0, as_stream(stream)>>>(in, rows, cols, out);
}

}  // namespace histocnn::cuda
