// Naive reference implementations of every layer, forward and backward, in
// plain loops over NCHW arrays. They define what the backends must compute
// (tests compare oneDNN and cuDNN against them) and are themselves checked
// by finite differences. Slow on purpose: clarity over speed.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/elementwise.h"
#include "nn/params.h"
#include "nn/spec.h"

namespace histocnn::reference {

// x: [N, C, H, W], w: [O, C, K, K], b: [O] (null: none) -> y: [N, O, H+2p-K+1, W+2p-K+1]
void conv2d_forward(const float* x, const float* w, const float* b, float* y, int n, int c, int h,
                    int wd, int o, int k, int pad);
// dy -> dx (may be null), dw, db (overwritten; db may be null)
void conv2d_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, int n, int c, int h, int wd, int o, int k, int pad);
// x: [N, C, H, W] -> y: [N, C, H/p, W/p] (floor), max over p x p windows
void maxpool_forward(const float* x, float* y, int n, int c, int h, int w, int p);
// Gradient to the first maximum of each window.
void maxpool_backward(const float* x, const float* dy, float* dx, int n, int c, int h, int w,
                      int p);
void relu_forward(const float* x, float* y, int64_t count);
void relu_backward(const float* x, const float* dy, float* dx, int64_t count);
// x: [N, I], w: [O, I], b: [O] -> y: [N, O]
void dense_forward(const float* x, const float* w, const float* b, float* y, int n, int in,
                   int out);
void dense_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db, int n, int in, int out);
// Batch normalisation over (N, H, W) per channel, x/y: [N, C, HW].
// Training: batch mean and biased variance (written to mean/var) normalise;
// eps = kBatchNormEpsilon. Inference: the running statistics do.
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y,
                             float* mean, float* var, int n, int c, int hw);
void batchnorm_forward_infer(const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y, int n,
                             int c, int hw);
// dy -> dx, dgamma, dbeta (overwritten), with the forward's batch mean/var.
void batchnorm_backward(const float* x, const float* gamma, const float* mean, const float* var,
                        const float* dy, float* dx, float* dgamma, float* dbeta, int n, int c,
                        int hw);
// x: [N, C, HW] -> y: [N, C] (mean over HW), and its backward (dx = dy / HW).
void global_avgpool_forward(const float* x, float* y, int n, int c, int hw);
void global_avgpool_backward(const float* dy, float* dx, int n, int c, int hw);
// logits: [N, classes]; mean loss over `count` rows against the labels
// smoothed by `smoothing` (nn/elementwise.h: the target written out again
// here, in double); dlogits for all N rows (zero past count); probs for all
// N rows.
double softmax_cross_entropy(const float* logits, const int32_t* labels, int n, int classes,
                             int count, float* dlogits, float* probs,
                             elementwise::LabelSmoothing smoothing = {});

// The whole network, forward and backward, on canonical parameters. Dropout
// (when `training`) draws counter_uniform(dropout_seed, step * 64 + dense_index, j).
// Batch norm (when the network has it) needs `buffers`: training normalises
// with the batch's statistics (count must be the whole batch) and updates
// them as PyTorch does; inference uses them.
struct NetworkResult {
  double loss = 0;
  std::vector<float> probs;     // [N, classes]
  std::vector<float> features;  // [N, the last dense layer's inputs]: what it read
  Parameters grads;
};
NetworkResult network_forward_backward(const NetworkShape& shape, const Parameters& params,
                                       const float* images, const int32_t* labels, int count,
                                       bool training, uint64_t dropout_seed, int64_t step,
                                       Buffers* buffers = nullptr,
                                       elementwise::LabelSmoothing smoothing = {});

}  // namespace histocnn::reference
