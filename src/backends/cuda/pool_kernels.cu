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

// One thread per pooled element, in the pooled map's layout (adjacent
// threads: adjacent channels when channels last, so reads coalesce too).
template <typename T>
__global__ void max_pool_forward_kernel(const T* act, const float* bias, T* pooled, uint8_t* argmax,
                                        int64_t total, PoolMaps maps) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= total) return;
  const MapCoords o = maps.pooled().coords(j);
  const WindowMax m = window_max(act + maps.act.at(o.n, o.c, 0, 0), maps.geometry(), o.y, o.x,
                                 maps.act.row_stride(), maps.act.col_stride());
  write_pooled(pooled, argmax, j, m, bias, o.c);
}

__global__ void bias_relu_kernel(Bf16* y, const float* bias, int64_t total, MapLayout layout) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  store(y, i, pooled_value(load(y, i), bias, layout.channel_of(i)));
}

// Channels first: one block per plane, every element of d_act written once
// (coalesced), and the plane's sum for the bias gradient.
template <typename T>
__global__ void pool_relu_backward_kernel(const T* relu_out, const T* d_pooled,
                                          const uint8_t* argmax, T* d_act, float* plane_sums,
                                          PoolGeometry g) {
  const int64_t plane = blockIdx.x;
  const int64_t pooled_offset = plane * g.pooled_h() * g.pooled_w();
  const T* r = relu_out ? relu_out + pooled_offset : nullptr;
  const T* dp = d_pooled + pooled_offset;
  const uint8_t* am = argmax ? argmax + pooled_offset : nullptr;
  T* out = d_act ? d_act + plane * int64_t(g.h) * g.w : nullptr;
  float sum = 0;
  for (int e = int(threadIdx.x); e < g.h * g.w; e += int(blockDim.x)) {
    const int y = e / g.w, x = e - y * g.w;
    const float v = pool_relu_backward_at(r, dp, am, g, y, x);
    if (out) store(out, e, v);  // in place when p == 1: this thread read element e just above
    sum += v;
  }
  if (!plane_sums) return;
  const float total = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) plane_sums[plane] = total;
}

// Channels last: band_sums over the map, each element's gradient written
// as it is summed (in place when p == 1: the thread read it just before).
template <typename T>
__global__ void pool_relu_backward_last_kernel(const T* relu_out, const T* d_pooled,
                                               const uint8_t* argmax, T* d_act, float* partials,
                                               PoolMaps maps, int bands) {
  const MapLayout pl = maps.pooled();
  const SumPair total = band_sums(maps.act, bands, [&](int n, int c, int y, int x) {
    const int64_t base = pl.at(n, c, 0, 0);
    const float v = pool_relu_backward_at(relu_out ? relu_out + base : nullptr, d_pooled + base,
                                          argmax ? argmax + base : nullptr, maps.geometry(), y, x,
                                          pl.row_stride(), pl.col_stride());
    if (d_act) store(d_act, maps.act.at(n, c, y, x), v);
    return SumPair{v, 0};
  });
  const int c = int(blockIdx.y) * 32 + int(threadIdx.x);
  if (partials && threadIdx.y == 0 && c < maps.act.c)
    partials[int64_t(blockIdx.x) * maps.act.c + c] = total.a;
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
void max_pool_forward(const T* act, const float* bias, T* pooled, uint8_t* argmax,
                      const PoolMaps& maps, Stream stream) {
  const MapLayout out = maps.pooled();
  const int64_t total = int64_t(maps.n) * out.c * out.h * out.w;
  if (total == 0) return;
  max_pool_forward_kernel<<<int((total + kThreads - 1) / kThreads), kThreads, 0,
                            as_stream(stream)>>>(act, bias, pooled, argmax, total, maps);
}

template <typename T>
void pool_relu_backward(const T* relu_out, const T* d_pooled, const uint8_t* argmax, T* d_act,
                        float* bias_partials, const PoolMaps& maps, Stream stream) {
  if (maps.n == 0 || maps.act.c == 0) return;
  if (!maps.act.channels_last) {
    pool_relu_backward_kernel<<<maps.n * maps.act.c, kThreads, 0, as_stream(stream)>>>(
        relu_out, d_pooled, argmax, d_act, bias_partials, maps.geometry());
    return;
  }
  const int bands = bias_partial_rows(maps) / maps.n;
  const dim3 grid(unsigned(maps.n * bands), unsigned((maps.act.c + 31) / 32));
  pool_relu_backward_last_kernel<<<grid, dim3(32, 8), 0, as_stream(stream)>>>(
      relu_out, d_pooled, argmax, d_act, bias_partials, maps, bands);
}

}  // namespace

void launch_max_pool_forward(const float* act, const float* bias, float* pooled, uint8_t* argmax,
                             const PoolMaps& maps, Stream stream) {
  max_pool_forward(act, bias, pooled, argmax, maps, stream);
}
void launch_max_pool_forward(const Bf16* act, const float* bias, Bf16* pooled, uint8_t* argmax,
                             const PoolMaps& maps, Stream stream) {
  max_pool_forward(act, bias, pooled, argmax, maps, stream);
}

void launch_pool_relu_backward(const float* relu_out, const float* d_pooled, const uint8_t* argmax,
                               float* d_act, float* bias_partials, const PoolMaps& maps,
                               Stream stream) {
  pool_relu_backward(relu_out, d_pooled, argmax, d_act, bias_partials, maps, stream);
}
void launch_pool_relu_backward(const Bf16* relu_out, const Bf16* d_pooled, const uint8_t* argmax,
                               Bf16* d_act, float* bias_partials, const PoolMaps& maps,
                               Stream stream) {
  pool_relu_backward(relu_out, d_pooled, argmax, d_act, bias_partials, maps, stream);
}

void launch_bias_relu(Bf16* y, const float* bias, int n, const MapLayout& layout, Stream stream) {
  const int64_t total = int64_t(n) * layout.c * layout.h * layout.w;
  if (total == 0) return;
  bias_relu_kernel<<<int((total + kThreads - 1) / kThreads), kThreads, 0, as_stream(stream)>>>(
      y, bias, total, layout);
}

void launch_column_sums(const float* in, int rows, int cols, float* out, Stream stream) {
  if (cols == 0) return;
  column_sums_kernel<<<(cols + 31) / 32, dim3(32, 8), 0, as_stream(stream)>>>(in, rows, cols, out);
}

}  // namespace histocnn::cuda
