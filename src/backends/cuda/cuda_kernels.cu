#include <cuda_runtime.h>

#include <string>

#include "backends/cuda/cuda_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

constexpr int kThreads = 256;
int blocks_for(int64_t n) {
  return int((n + kThreads - 1) / kThreads);
}
cudaStream_t as_stream(Stream s) {
  return static_cast<cudaStream_t>(s);
}

__global__ void dense_activation_kernel(float* y, const float* bias, int rows, int outputs,
                                        bool relu, float dropout, uint64_t seed,
                                        const int64_t* step, const BatchMeta* meta, int layer) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * outputs) return;
  y[i] = dense_activation_at(i, y[i], bias, outputs, relu, dropout, seed, *step + 1, *meta, layer);
}

__global__ void dense_activation_backward_kernel(float* g, const float* y, int rows, int outputs,
                                                 float dropout, uint64_t seed, const int64_t* step,
                                                 const BatchMeta* meta, int layer) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(rows) * outputs) return;
  g[i] =
      dense_activation_backward_at(i, y[i], g[i], outputs, dropout, seed, *step + 1, *meta, layer);
}

// One block: rows are few (the batch), and one block adds the loss and the
// correct count in a fixed order — deterministic, unlike an atomic per row,
// so a replayed graph and an eager step give the same bits.
__global__ void softmax_xent_kernel(const float* logits, float* d_logits, float* probs,
                                    const int32_t* labels, const BatchMeta* meta, int rows,
                                    int classes, bool backward,
                                    elementwise::LabelSmoothing smoothing, double* loss_sum,
                                    int* correct) {
  __shared__ double losses[kThreads];
  __shared__ int corrects[kThreads];
  double loss = 0;
  int right = 0;
  for (int row = int(threadIdx.x); row < rows; row += kThreads) {
    // d_logits may alias the logits: loss_row reads each before writing it.
    const size_t at = size_t(row) * size_t(classes);
    const LossRow r =
        loss_row(row, logits + at, classes, labels, *meta, backward, probs ? probs + at : nullptr,
                 d_logits ? d_logits + at : nullptr, smoothing);
    if (r.real) {
      loss += r.s.loss;
      right += r.s.correct;
    }
  }
  losses[threadIdx.x] = loss;
  corrects[threadIdx.x] = right;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (int(threadIdx.x) < half) {
      losses[threadIdx.x] += losses[threadIdx.x + half];
      corrects[threadIdx.x] += corrects[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {  // one writer, stream-ordered with the other steps
    *loss_sum += losses[0];
    *correct += corrects[0];
  }
}

__global__ void adam_prepare_kernel(int64_t* step, const float* lr, float b1, float b2, float eps,
                                    float weight_decay, elementwise::AdamStep* constants) {
  const int64_t t = ++*step;
  *constants = elementwise::adam_step(*lr, b1, b2, eps, weight_decay, t);
}

__global__ void adam_kernel(float* w, const float* g, float* m, float* v, Bf16* shadow, int64_t n,
                            const elementwise::AdamStep* constants) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  elementwise::adam(*constants, g[i], w + i, m + i, v + i);
  if (shadow) shadow[i] = to_bf16(w[i]);
}

template <typename From, typename To>
__global__ void convert_kernel(const From* in, To* out, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) store(out, i, load(in, i));
}

template <typename From, typename To>
__global__ void relayout_kernel(const From* in, To* out, int64_t total, MapLayout from,
                                MapLayout to) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < total) store(out, i, relaid_at(in, from, to, i));
}

template <typename From, typename To>
void relayout(const From* in, To* out, int n, const MapLayout& to, Stream stream) {
  const int64_t total = int64_t(n) * to.c * to.h * to.w;
  const MapLayout from{to.c, to.h, to.w, !to.channels_last};
  if (total > 0)
    relayout_kernel<<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(in, out, total, from,
                                                                           to);
}

__global__ void fill_kernel(float* p, float value, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) p[i] = value;
}

}  // namespace

void launch_dense_activation(float* y, const float* bias, int rows, int outputs, bool relu,
                             float dropout, uint64_t seed, const int64_t* step,
                             const BatchMeta* meta, int layer, Stream stream) {
  const int64_t n = int64_t(rows) * outputs;
  dense_activation_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
      y, bias, rows, outputs, relu, dropout, seed, step, meta, layer);
}

void launch_dense_activation_backward(float* g, const float* y, int rows, int outputs,
                                      float dropout, uint64_t seed, const int64_t* step,
                                      const BatchMeta* meta, int layer, Stream stream) {
  const int64_t n = int64_t(rows) * outputs;
  dense_activation_backward_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
      g, y, rows, outputs, dropout, seed, step, meta, layer);
}

void launch_softmax_xent(const float* logits, float* d_logits, float* probs, const int32_t* labels,
                         const BatchMeta* meta, int rows, int classes, bool backward,
                         elementwise::LabelSmoothing smoothing, double* loss_sum, int* correct,
                         Stream stream) {
  softmax_xent_kernel<<<1, kThreads, 0, as_stream(stream)>>>(
      logits, d_logits, probs, labels, meta, rows, classes, backward, smoothing, loss_sum, correct);
}

void launch_adam_prepare(int64_t* step, const float* learning_rate, float beta1, float beta2,
                         float epsilon, float weight_decay, elementwise::AdamStep* constants,
                         Stream stream) {
  adam_prepare_kernel<<<1, 1, 0, as_stream(stream)>>>(step, learning_rate, beta1, beta2, epsilon,
                                                      weight_decay, constants);
}

void launch_adam(float* weights, const float* grads, float* m, float* v, int64_t n,
                 const elementwise::AdamStep* constants, Stream stream, Bf16* shadow) {
  adam_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(weights, grads, m, v, shadow, n,
                                                                 constants);
}

void launch_to_bf16(const float* in, Bf16* out, int64_t n, Stream stream) {
  if (n > 0) convert_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(in, out, n);
}

void launch_to_float(const Bf16* in, float* out, int64_t n, Stream stream) {
  if (n > 0) convert_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(in, out, n);
}

void launch_relayout(const float* in, float* out, int n, const MapLayout& to, Stream stream) {
  relayout(in, out, n, to, stream);
}
void launch_relayout(const float* in, Bf16* out, int n, const MapLayout& to, Stream stream) {
  relayout(in, out, n, to, stream);
}
void launch_relayout(const Bf16* in, Bf16* out, int n, const MapLayout& to, Stream stream) {
  relayout(in, out, n, to, stream);
}
void launch_relayout(const Bf16* in, float* out, int n, const MapLayout& to, Stream stream) {
  relayout(in, out, n, to, stream);
}

// A thread per pixel of image blockIdx.y (rows past `count` written zero).
__global__ void expand_byte_images_kernel(const uint8_t* __restrict__ pixels,
                                          const float* __restrict__ tables, float* __restrict__ chw,
                                          int64_t plane, int count) {
  const int64_t p = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p < plane) expand_byte_pixel(pixels, tables, chw, plane, count, int(blockIdx.y), p);
}

void launch_expand_byte_images(const uint8_t* pixels, const float* tables, float* chw, int count,
                               int batch, int64_t plane, Stream stream) {
  if (batch <= 0 || plane <= 0) return;
  const dim3 grid(unsigned(blocks_for(plane)), unsigned(batch));
  expand_byte_images_kernel<<<grid, kThreads, 0, as_stream(stream)>>>(pixels, tables, chw, plane,
                                                                      count);
}

void launch_fill(float* p, float value, int64_t n, Stream stream) {
  fill_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(p, value, n);
}

void check_launch(const char* what) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    fail(std::string(what) + ": kernel launch failed: " + cudaGetErrorString(status));
}

}  // namespace histocnn::cuda
