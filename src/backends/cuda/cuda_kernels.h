// The CUDA step's own kernels: only what no cuDNN/cuBLAS call provides. Each
// is a thin grid over a per-element function of nn/elementwise.h (the code the
// CPU backend runs), so their arithmetic is verified by host tests.
// All pointers are device memory; `stream` is a cudaStream_t. Launches are
// asynchronous; errors surface through check_launch (cudaGetLastError).
// Values that change every step (the step counter, the batch's row count)
// are read from device memory, so a captured CUDA graph replays correctly.
#pragma once

#include <cstdint>

#include "nn/elementwise.h"

namespace histocnn::cuda {

using Stream = void*;

// The batch being computed, in device memory (copied with the images): its
// rows, and for a slice of a data-parallel batch the global row count (the
// loss's denominator) and the global index of its first row (dropout masks).
struct BatchMeta {
  int count = 0;
  int global_count = 0;  // 0: count
  int64_t first_row = 0;
};

// y[n, o] = act(y + bias[o]) * dropout mask; the mask comes from the counter
// hash of (seed, dropout_stream(*step + 1, layer), global index) when dropout > 0.
void launch_dense_activation(float* y, const float* bias, int rows, int outputs, bool relu,
                             float dropout, uint64_t seed, const int64_t* step,
                             const BatchMeta* meta, int layer, Stream stream);
// g = relu_dropout_grad(y, g, mask) (the mask recomputed, no memory kept).
void launch_dense_activation_backward(float* g, const float* y, int rows, int outputs,
                                      float dropout, uint64_t seed, const int64_t* step,
                                      const BatchMeta* meta, int layer, Stream stream);
// Softmax cross-entropy per row of logits[rows, 2]; rows >= meta->count get
// zero gradient; the gradient is of the mean over meta->global_count rows.
// Adds the loss and correct count into the device accumulators; writes
// probabilities when `probs` is not null; d_logits may alias logits.
void launch_softmax_xent(const float* logits, float* d_logits, float* probs, const int32_t* labels,
                         const BatchMeta* meta, int rows, bool backward, double* loss_sum,
                         int* correct, Stream stream);
// ++*step, then constants = adam_step(config, *step): one thread.
void launch_adam_prepare(int64_t* step, float learning_rate, float beta1, float beta2,
                         float epsilon, elementwise::AdamStep* constants, Stream stream);
void launch_adam(float* weights, const float* grads, float* m, float* v, int64_t n,
                 const elementwise::AdamStep* constants, Stream stream);
void launch_fill(float* p, float value, int64_t n, Stream stream);
// Throws histocnn::Error naming `what` when a launch failed.
void check_launch(const char* what);

}  // namespace histocnn::cuda
