// The CUDA step's own kernels: only what no cuDNN/cuBLAS call provides. Each
// is a thin grid over a per-element function of nn/elementwise.h (the code the
// CPU backend runs), so their arithmetic is verified by host tests.
// All pointers are device memory; `stream` is a cudaStream_t. Launches are
// asynchronous; errors surface through check_launch (cudaGetLastError).
// Values that change every step (the step counter, the batch's row count)
// are read from device memory, so a captured CUDA graph replays correctly.
#pragma once

#include <cstdint>

#include "backends/cuda/map_layout.h"
#include "core/bf16.h"
#include "core/byte_images.h"
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

// ---- The kernels' bodies, one element or row each: the kernels are grids
// over these, and tests/cuda_schedule_on_host.h runs them on the host. ----

// Dense output element i of [rows, outputs] after the GEMM; `step` is the
// training step (1-based). Dropout masks are indexed by global row.
HISTOCNN_HD float dense_activation_at(int64_t i, float y, const float* bias, int outputs, bool relu,
                                      float dropout, uint64_t seed, int64_t step,
                                      const BatchMeta& meta, int layer) {
  const uint64_t index = uint64_t(meta.first_row) * uint64_t(outputs) + uint64_t(i);
  return elementwise::dense_activation(y, bias[i % outputs], relu, dropout, seed, step, layer,
                                       index);
}
HISTOCNN_HD float dense_activation_backward_at(int64_t i, float y, float g, int outputs,
                                               float dropout, uint64_t seed, int64_t step,
                                               const BatchMeta& meta, int layer) {
  const uint64_t index = uint64_t(meta.first_row) * uint64_t(outputs) + uint64_t(i);
  return elementwise::dense_activation_backward(y, g, dropout, seed, step, layer, index);
}
// Row `row` of the loss over `classes` logits z: rows past meta.count are
// padding (zero gradient, not counted); the gradient is of the mean over the
// global batch. Writes probs (when not null) and d_logits (which may alias z).
struct LossRow {
  elementwise::SoftmaxRow s;
  bool real;
};
HISTOCNN_HD LossRow loss_row(int row, const float* z, int classes, const int32_t* labels,
                             const BatchMeta& meta, bool backward, float* probs, float* d_logits,
                             elementwise::LabelSmoothing smoothing = {}) {
  LossRow r;
  r.real = row < meta.count && labels;
  const int label = r.real ? labels[row] : 0;
  const int denominator = meta.global_count > 0 ? meta.global_count : meta.count;
  r.s = elementwise::softmax_xent(z, classes, label, smoothing);
  elementwise::softmax_xent_grad(r.s, z, classes, label,
                                 r.real && backward ? 1.0f / float(denominator) : 0.0f, probs,
                                 d_logits, smoothing);
  return r;
}

// y[n, o] = act(y + bias[o]) * dropout mask; the mask comes from the counter
// hash of (seed, dropout_stream(*step + 1, layer), global index) when dropout > 0.
void launch_dense_activation(float* y, const float* bias, int rows, int outputs, bool relu,
                             float dropout, uint64_t seed, const int64_t* step,
                             const BatchMeta* meta, int layer, Stream stream);
// g = relu_dropout_grad(y, g, mask) (the mask recomputed, no memory kept).
void launch_dense_activation_backward(float* g, const float* y, int rows, int outputs,
                                      float dropout, uint64_t seed, const int64_t* step,
                                      const BatchMeta* meta, int layer, Stream stream);
// Softmax cross-entropy per row of logits[rows, classes] against the labels
// smoothed by `smoothing`; rows >= meta->count get zero gradient; the
// gradient is of the mean over meta->global_count rows.
// Adds the loss and correct count into the device accumulators (in a fixed
// order: deterministic); writes
// probabilities when `probs` is not null; d_logits may alias logits.
// d_logits may be null (inference) or the logits themselves.
void launch_softmax_xent(const float* logits, float* d_logits, float* probs, const int32_t* labels,
                         const BatchMeta* meta, int rows, int classes, bool backward,
                         elementwise::LabelSmoothing smoothing, double* loss_sum, int* correct,
                         Stream stream);
// ++*step, then constants = adam_step(*learning_rate, ..., *step): one thread.
// The learning rate is read from device memory so a captured graph follows
// the schedule (set_learning_rate writes it before each step).
void launch_adam_prepare(int64_t* step, const float* learning_rate, float beta1, float beta2,
                         float epsilon, float weight_decay, elementwise::AdamStep* constants,
                         Stream stream);
// With `shadow` (--precision bf16), shadow[i] = to_bf16(the updated weight):
// the copy the bf16 convolutions read, refreshed in the same pass.
void launch_adam(float* weights, const float* grads, float* m, float* v, int64_t n,
                 const elementwise::AdamStep* constants, Stream stream, Bf16* shadow = nullptr);
// --precision bf16: out[i] = to_bf16(in[i]), and back (exact).
void launch_to_bf16(const float* in, Bf16* out, int64_t n, Stream stream);
void launch_to_float(const Bf16* in, float* out, int64_t n, Stream stream);
// --channels-last: `n` maps (images, or filters) copied from the opposite
// layout into `to`'s, converting the type (relaid_at): the staged batch into
// conv1's channels-last input, the KCRS weights into the KRSC filters cuDNN
// reads, and the KRSC weight gradients back into the KCRS gradients.
void launch_relayout(const float* in, float* out, int n, const MapLayout& to, Stream stream);
void launch_relayout(const float* in, Bf16* out, int n, const MapLayout& to, Stream stream);
void launch_relayout(const Bf16* in, Bf16* out, int n, const MapLayout& to, Stream stream);
void launch_relayout(const Bf16* in, float* out, int n, const MapLayout& to, Stream stream);
// A batch sent as bytes (core/byte_images.h) into the step's NCHW fp32
// input: `batch` rows of `plane` pixels, those past `count` zero;
// expand_byte_pixel per thread, so the host's expand_byte_images is its
// reference to the bit (a lookup: no arithmetic to round differently).
void launch_expand_byte_images(const uint8_t* pixels, const float* tables, float* chw, int count,
                               int batch, int64_t plane, Stream stream);
void launch_fill(float* p, float value, int64_t n, Stream stream);
// Throws histocnn::Error naming `what` when a launch failed.
void check_launch(const char* what);

}  // namespace histocnn::cuda
