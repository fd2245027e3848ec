// The batch-norm kernels of bn_kernels.h: grids over its per-element functions.
#include <cuda_runtime.h>

#include "backends/cuda/block_sum.cuh"
#include "backends/cuda/bn_kernels.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = 256;
cudaStream_t as_stream(Stream s) {
  return static_cast<cudaStream_t>(s);
}
int blocks_for(int64_t n) {
  return int((n + kThreads - 1) / kThreads);
}

// Channels first: one block per plane (image n, channel c: blockIdx.x = n *
// C + c, its elements contiguous), each thread a strided share of them.
template <typename T>
__global__ void plane_moments_kernel(const T* x, const float* centre, float* sums,
                                     MapLayout layout) {
  const int64_t plane = blockIdx.x, per_plane = int64_t(layout.h) * layout.w;
  const T* p = x + plane * per_plane;
  const int channel = int(plane % layout.c);
  float sum = 0;
  for (int64_t e = threadIdx.x; e < per_plane; e += kThreads)
    sum += bn_moment_term(load(p, e), centre, channel);
  const float total = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) sums[plane] = total;
}

template <typename T>
__global__ void plane_backward_sums_kernel(const T* d, const T* x, const float* mean,
                                           const float* inv_std, float* d_sums, float* dx_hat_sums,
                                           MapLayout layout) {
  const int64_t plane = blockIdx.x, per_plane = int64_t(layout.h) * layout.w;
  const int c = int(plane % layout.c);
  float sd = 0, sdx = 0;
  for (int64_t e = threadIdx.x; e < per_plane; e += kThreads) {
    const float g = load(d, plane * per_plane + e);
    sd += g;
    sdx += g * bn_normalized(load(x, plane * per_plane + e), mean[c], inv_std[c]);
  }
  const float total_d = block_sum<kThreads>(sd);
  const float total_dx = block_sum<kThreads>(sdx);
  if (threadIdx.x == 0) {
    d_sums[plane] = total_d;
    dx_hat_sums[plane] = total_dx;
  }
}

// Channels last: band_sums (block_sum.cuh), a row of partial sums per image band.
template <typename T>
__global__ void band_moments_kernel(const T* x, const float* centre, float* sums, MapLayout layout,
                                    int bands) {
  const SumPair total = band_sums(layout, bands, [&](int n, int c, int y, int xx) {
    return SumPair{bn_moment_term(load(x, layout.at(n, c, y, xx)), centre, c), 0};
  });
  const int c = int(blockIdx.y) * 32 + int(threadIdx.x);
  if (threadIdx.y == 0 && c < layout.c) sums[int64_t(blockIdx.x) * layout.c + c] = total.a;
}

template <typename T>
__global__ void band_backward_sums_kernel(const T* d, const T* x, const float* mean,
                                          const float* inv_std, float* d_sums, float* dx_hat_sums,
                                          MapLayout layout, int bands) {
  const SumPair total = band_sums(layout, bands, [&](int n, int c, int y, int xx) {
    const int64_t i = layout.at(n, c, y, xx);
    const float g = load(d, i);
    return SumPair{g, g * bn_normalized(load(x, i), mean[c], inv_std[c])};
  });
  const int c = int(blockIdx.y) * 32 + int(threadIdx.x);
  if (threadIdx.y != 0 || c >= layout.c) return;
  d_sums[int64_t(blockIdx.x) * layout.c + c] = total.a;
  dx_hat_sums[int64_t(blockIdx.x) * layout.c + c] = total.b;
}

__global__ void scale_kernel(float* values, float scale, int n) {
  const int i = int(blockIdx.x) * kThreads + int(threadIdx.x);
  if (i < n) values[i] *= scale;
}

__global__ void finalize_kernel(float* mean, float* variance, float* running_mean,
                                float* running_var, bool training, int64_t count, float momentum,
                                float epsilon, int channels) {
  const int c = int(blockIdx.x) * kThreads + int(threadIdx.x);
  if (c >= channels) return;
  if (training) {
    bn_update_running(mean[c], variance[c], count, momentum, running_mean + c, running_var + c);
    variance[c] = bn_inv_std(variance[c], epsilon);
  } else {
    mean[c] = running_mean[c];
    variance[c] = bn_inv_std(running_var[c], epsilon);
  }
}

template <typename T>
__global__ void relu_forward_kernel(const T* x, T* y, const float* mean, const float* inv_std,
                                    const float* gamma, const float* beta, int64_t total,
                                    MapLayout layout) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const int c = layout.channel_of(i);
  store(y, i, bn_relu_at(load(x, i), mean[c], inv_std[c], gamma[c], beta[c]));
}

template <typename T>
__global__ void backward_dx_kernel(const T* d, const T* x, T* dx, const float* mean,
                                   const float* inv_std, const float* gamma, const float* dgamma,
                                   const float* dbeta, int64_t total, MapLayout layout,
                                   int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const int c = layout.channel_of(i);
  const float x_hat = bn_normalized(load(x, i), mean[c], inv_std[c]);
  store(dx, i,
        bn_backward_dx_at(load(d, i), x_hat, gamma[c], inv_std[c], dgamma[c], dbeta[c], count));
}

int64_t elements(int n, const MapLayout& l) {
  return int64_t(n) * l.c * l.h * l.w;
}
// Channels last: the band grid of band_sums.
struct BandGrid {
  int bands;
  dim3 blocks;
};
BandGrid band_grid(int n, const MapLayout& l) {
  const int bands = channel_sum_rows(n, l) / n;
  return {bands, dim3(unsigned(n * bands), unsigned((l.c + 31) / 32))};
}

template <typename T>
void channel_moments(const T* x, const float* centre, float* partials, int n,
                     const MapLayout& layout, Stream stream) {
  if (elements(n, layout) == 0) return;
  if (!layout.channels_last) {
    plane_moments_kernel<<<n * layout.c, kThreads, 0, as_stream(stream)>>>(x, centre, partials,
                                                                           layout);
    return;
  }
  const BandGrid g = band_grid(n, layout);
  band_moments_kernel<<<g.blocks, dim3(32, 8), 0, as_stream(stream)>>>(x, centre, partials, layout,
                                                                       g.bands);
}

template <typename T>
void relu_forward(const T* x, T* y, const float* mean, const float* inv_std, const float* gamma,
                  const float* beta, int n, const MapLayout& layout, Stream stream) {
  const int64_t total = elements(n, layout);
  if (total == 0) return;
  relu_forward_kernel<<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
      x, y, mean, inv_std, gamma, beta, total, layout);
}

template <typename T>
void backward_sums(const T* d, const T* x, const float* mean, const float* inv_std, float* d_sums,
                   float* dx_hat_sums, int n, const MapLayout& layout, Stream stream) {
  if (elements(n, layout) == 0) return;
  if (!layout.channels_last) {
    plane_backward_sums_kernel<<<n * layout.c, kThreads, 0, as_stream(stream)>>>(
        d, x, mean, inv_std, d_sums, dx_hat_sums, layout);
    return;
  }
  const BandGrid g = band_grid(n, layout);
  band_backward_sums_kernel<<<g.blocks, dim3(32, 8), 0, as_stream(stream)>>>(
      d, x, mean, inv_std, d_sums, dx_hat_sums, layout, g.bands);
}

template <typename T>
void backward_dx(const T* d, const T* x, T* dx, const float* mean, const float* inv_std,
                 const float* gamma, const float* dgamma, const float* dbeta, int n,
                 const MapLayout& layout, Stream stream) {
  const int64_t total = elements(n, layout);
  if (total == 0) return;
  backward_dx_kernel<<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
      d, x, dx, mean, inv_std, gamma, dgamma, dbeta, total, layout,
      int64_t(n) * layout.h * layout.w);
}

}  // namespace

void launch_bn_channel_moments(const float* x, const float* centre, float* partials, int n,
                               const MapLayout& layout, Stream stream) {
  channel_moments(x, centre, partials, n, layout, stream);
}
void launch_bn_channel_moments(const Bf16* x, const float* centre, float* partials, int n,
                               const MapLayout& layout, Stream stream) {
  channel_moments(x, centre, partials, n, layout, stream);
}

void launch_scale(float* values, float scale, int channels, Stream stream) {
  if (channels == 0) return;
  scale_kernel<<<blocks_for(channels), kThreads, 0, as_stream(stream)>>>(values, scale, channels);
}

void launch_bn_finalize(float* mean, float* variance_to_inv_std, float* running_mean,
                        float* running_var, bool training, int64_t count, float momentum,
                        float epsilon, int channels, Stream stream) {
  if (channels == 0) return;
  finalize_kernel<<<blocks_for(channels), kThreads, 0, as_stream(stream)>>>(
      mean, variance_to_inv_std, running_mean, running_var, training, count, momentum, epsilon,
      channels);
}

void launch_bn_relu_forward(const float* x, float* y, const float* mean, const float* inv_std,
                            const float* gamma, const float* beta, int n, const MapLayout& layout,
                            Stream stream) {
  relu_forward(x, y, mean, inv_std, gamma, beta, n, layout, stream);
}
void launch_bn_relu_forward(const Bf16* x, Bf16* y, const float* mean, const float* inv_std,
                            const float* gamma, const float* beta, int n, const MapLayout& layout,
                            Stream stream) {
  relu_forward(x, y, mean, inv_std, gamma, beta, n, layout, stream);
}

void launch_bn_backward_sums(const float* d, const float* x, const float* mean,
                             const float* inv_std, float* d_sums, float* dx_hat_sums, int n,
                             const MapLayout& layout, Stream stream) {
  backward_sums(d, x, mean, inv_std, d_sums, dx_hat_sums, n, layout, stream);
}
void launch_bn_backward_sums(const Bf16* d, const Bf16* x, const float* mean, const float* inv_std,
                             float* d_sums, float* dx_hat_sums, int n, const MapLayout& layout,
                             Stream stream) {
  backward_sums(d, x, mean, inv_std, d_sums, dx_hat_sums, n, layout, stream);
}

void launch_bn_backward_dx(const float* d, const float* x, float* dx, const float* mean,
                           const float* inv_std, const float* gamma, const float* dgamma,
                           const float* dbeta, int n, const MapLayout& layout, Stream stream) {
  backward_dx(d, x, dx, mean, inv_std, gamma, dgamma, dbeta, n, layout, stream);
}
void launch_bn_backward_dx(const Bf16* d, const Bf16* x, Bf16* dx, const float* mean,
                           const float* inv_std, const float* gamma, const float* dgamma,
                           const float* dbeta, int n, const MapLayout& layout, Stream stream) {
  backward_dx(d, x, dx, mean, inv_std, gamma, dgamma, dbeta, n, layout, stream);
}

}  // namespace histocnn::cuda
