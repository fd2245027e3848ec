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

// One block per plane, each thread a strided share of its elements.
__global__ void plane_moments_kernel(const Bf16* x, const float* centre, float* sums, int channels,
                                     int64_t per_plane) {
  const int64_t plane = blockIdx.x;
  const Bf16* p = x + plane * per_plane;
  const int channel = int(plane % channels);
  float sum = 0;
  for (int64_t e = threadIdx.x; e < per_plane; e += kThreads)
    sum += bn_moment_term(load(p, e), centre, channel);
  const float total = block_sum<kThreads>(sum);
  if (threadIdx.x == 0) sums[plane] = total;
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

__global__ void relu_forward_kernel(const Bf16* x, Bf16* y, const float* mean, const float* inv_std,
                                    const float* gamma, const float* beta, int64_t total,
                                    int channels, int64_t per_plane) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const int c = int((i / per_plane) % channels);
  store(y, i, bn_relu_at(load(x, i), mean[c], inv_std[c], gamma[c], beta[c]));
}

__global__ void backward_sums_kernel(const Bf16* d, const Bf16* x, const float* mean,
                                     const float* inv_std, float* d_sums, float* dx_hat_sums,
                                     int channels, int64_t per_plane) {
  const int64_t plane = blockIdx.x;
  const int c = int(plane % channels);
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

__global__ void backward_dx_kernel(const Bf16* d, const Bf16* x, Bf16* dx, const float* mean,
                                   const float* inv_std, const float* gamma, const float* dgamma,
                                   const float* dbeta, int64_t total, int channels,
                                   int64_t per_plane, int64_t count) {
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= total) return;
  const int c = int((i / per_plane) % channels);
  const float x_hat = bn_normalized(load(x, i), mean[c], inv_std[c]);
  store(dx, i,
        bn_backward_dx_at(load(d, i), x_hat, gamma[c], inv_std[c], dgamma[c], dbeta[c], count));
}

}  // namespace

void launch_bn_plane_moments(const Bf16* x, const float* centre, float* sums, int planes,
                             int channels, int64_t per_plane, Stream stream) {
  if (planes == 0) return;
  plane_moments_kernel<<<planes, kThreads, 0, as_stream(stream)>>>(x, centre, sums, channels,
                                                                   per_plane);
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

void launch_bn_relu_forward(const Bf16* x, Bf16* y, const float* mean, const float* inv_std,
                            const float* gamma, const float* beta, int planes, int channels,
                            int64_t per_plane, Stream stream) {
  const int64_t total = int64_t(planes) * per_plane;
  if (total == 0) return;
  relu_forward_kernel<<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
      x, y, mean, inv_std, gamma, beta, total, channels, per_plane);
}

void launch_bn_backward_sums(const Bf16* d, const Bf16* x, const float* mean, const float* inv_std,
                             float* d_sums, float* dx_hat_sums, int planes, int channels,
                             int64_t per_plane, Stream stream) {
  if (planes == 0) return;
  backward_sums_kernel<<<planes, kThreads, 0, as_stream(stream)>>>(
      d, x, mean, inv_std, d_sums, dx_hat_sums, channels, per_plane);
}

void launch_bn_backward_dx(const Bf16* d, const Bf16* x, Bf16* dx, const float* mean,
                           const float* inv_std, const float* gamma, const float* dgamma,
                           const float* dbeta, int planes, int channels, int64_t per_plane,
                           Stream stream) {
  const int64_t total = int64_t(planes) * per_plane;
  if (total == 0) return;
  backward_dx_kernel<<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
      d, x, dx, mean, inv_std, gamma, dgamma, dbeta, total, channels, per_plane,
      int64_t(planes / channels) * per_plane);
}

}  // namespace histocnn::cuda
