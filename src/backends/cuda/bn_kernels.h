// Batch normalisation (spatial, per channel over N*H*W) followed by ReLU, our
// own kernels for --precision bf16 and for --channels-last (channels-first
// fp32 keeps cuDNN's calls): fp32 arithmetic, statistics and parameters over
// fp32 or bf16 maps, as PyTorch's autocast runs batch norm. Every reduction
// is in a fixed order (per plane, or per image band channels last, then
// launch_column_sums over the rows), so weights stay bit-identical run to
// run. Statistics take two passes (the mean, then the
// squared deviations from it), not E[x^2] - mean^2, which cancels.
//
// Forward (training):  mean, var (biased) of x; y = ReLU(gamma x^ + beta),
//   x^ = (x - mean) inv_std, inv_std = 1 / sqrt(var + eps); saved mean and
//   inv_std for backward; running mean/var updated as PyTorch's (momentum
//   0.1, unbiased variance).
// Forward (inference): the running statistics.
// Backward, from d = dL/d(gamma x^ + beta) (ReLU' already applied by the pool
//   kernel): dbeta = sum d, dgamma = sum d x^,
//   dx = gamma inv_std (d - (dbeta + x^ dgamma) / M), M = N*H*W.
//
// The arithmetic is the __host__ __device__ functions below; host tests run
// them (tests/cuda_kernels_on_host.h) against reference::batchnorm_*.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/map_layout.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

HISTOCNN_HD float bn_normalized(float x, float mean, float inv_std) {
  return (x - mean) * inv_std;
}
HISTOCNN_HD float bn_relu_at(float x, float mean, float inv_std, float gamma, float beta) {
  const float v = gamma * bn_normalized(x, mean, inv_std) + beta;
  return v > 0 ? v : 0.0f;
}
HISTOCNN_HD float bn_backward_dx_at(float d, float x_hat, float gamma, float inv_std, float dgamma,
                                    float dbeta, int64_t count) {
  return gamma * inv_std * (d - (dbeta + x_hat * dgamma) / float(count));
}
// Channel c's inverse deviation from its biased variance, and the running
// statistics' update (PyTorch: momentum 0.1, the unbiased variance).
HISTOCNN_HD float bn_inv_std(float variance, float epsilon) {
  return 1.0f / sqrtf(variance + epsilon);
}
HISTOCNN_HD void bn_update_running(float mean, float variance, int64_t count, float momentum,
                                   float* running_mean, float* running_var) {
  const float unbias = count > 1 ? float(double(count) / double(count - 1)) : 1.0f;
  *running_mean = (1 - momentum) * *running_mean + momentum * mean;
  *running_var = (1 - momentum) * *running_var + momentum * variance * unbias;
}
// What a plane sum adds up for element x of channel c: x itself
// (centre null), or its squared deviation from centre[c].
HISTOCNN_HD float bn_moment_term(float x, const float* centre, int channel) {
  if (!centre) return x;
  const float d = x - centre[channel];
  return d * d;
}

// ---- Launchers: `n` images of one map laid out as `layout` (channels first
// or last); per-channel arrays hold C floats; partial sums are
// [channel_sum_rows(n, layout), C] (map_layout.h), added over the rows by
// launch_column_sums. Each for fp32 maps (channels last; channels first
// keeps cuDNN's calls) and bf16 maps. Asynchronous on `stream`. ----

// partials = per-row sums of bn_moment_term(x, centre, channel).
void launch_bn_channel_moments(const float* x, const float* centre, float* partials, int n,
                               const MapLayout& layout, Stream stream);
void launch_bn_channel_moments(const Bf16* x, const float* centre, float* partials, int n,
                               const MapLayout& layout, Stream stream);
// values[c] *= scale (a channel total into a mean or a variance).
void launch_scale(float* values, float scale, int channels, Stream stream);
// Training: variance[c] (biased, in place) -> inv_std[c]; running mean/var
// updated from mean[c] and the variance. Inference (`running` statistics
// given, `update` false): mean[c] = running_mean[c], inv_std[c] from
// running_var[c]; `variance` unused.
void launch_bn_finalize(float* mean, float* variance_to_inv_std, float* running_mean,
                        float* running_var, bool training, int64_t count, float momentum,
                        float epsilon, int channels, Stream stream);
// y = bn_relu_at(x, ...) per element (y may alias x).
void launch_bn_relu_forward(const float* x, float* y, const float* mean, const float* inv_std,
                            const float* gamma, const float* beta, int n, const MapLayout& layout,
                            Stream stream);
void launch_bn_relu_forward(const Bf16* x, Bf16* y, const float* mean, const float* inv_std,
                            const float* gamma, const float* beta, int n, const MapLayout& layout,
                            Stream stream);
// d_sums = per-row sums of d, dx_hat_sums = of d * x^.
void launch_bn_backward_sums(const float* d, const float* x, const float* mean,
                             const float* inv_std, float* d_sums, float* dx_hat_sums, int n,
                             const MapLayout& layout, Stream stream);
void launch_bn_backward_sums(const Bf16* d, const Bf16* x, const float* mean, const float* inv_std,
                             float* d_sums, float* dx_hat_sums, int n, const MapLayout& layout,
                             Stream stream);
// dx = bn_backward_dx_at(...) per element.
void launch_bn_backward_dx(const float* d, const float* x, float* dx, const float* mean,
                           const float* inv_std, const float* gamma, const float* dgamma,
                           const float* dbeta, int n, const MapLayout& layout, Stream stream);
void launch_bn_backward_dx(const Bf16* d, const Bf16* x, Bf16* dx, const float* mean,
                           const float* inv_std, const float* gamma, const float* dgamma,
                           const float* dbeta, int n, const MapLayout& layout, Stream stream);

}  // namespace histocnn::cuda
