// The per-element math of the training step, written once for every backend:
// the CPU backend calls these functions in its loops, the CUDA kernels call
// them per thread, and host tests compare the two without a GPU.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/counter_hash.h"
#include "core/hd.h"

namespace histocnn::elementwise {

// Adam's bias-corrected constants for step t, computed once per step in double.
struct AdamStep {
  float beta1, beta2, epsilon;
  float decay;      // 1 - lr * weight_decay (AdamW's decoupled decay; 1 = Adam)
  float step_size;  // lr / (1 - beta1^t)
  float v_scale;    // 1 / sqrt(1 - beta2^t)
};

// The constants of step t (t >= 1), in double, then rounded: the same code on
// host and device.
HISTOCNN_HD AdamStep adam_step(float learning_rate, float beta1, float beta2, float epsilon,
                               float weight_decay, int64_t t) {
  AdamStep a;
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.epsilon = epsilon;
  a.decay = float(1.0 - double(learning_rate) * double(weight_decay));
  a.step_size = float(double(learning_rate) / (1.0 - pow(double(beta1), double(t))));
  a.v_scale = float(1.0 / sqrt(1.0 - pow(double(beta2), double(t))));
  return a;
}

// One parameter's update, in PyTorch's form (torch.optim.AdamW; Adam when decay = 1):
//   w *= decay; m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   w -= step_size * m / (sqrt(v) * v_scale + eps)
HISTOCNN_HD void adam(const AdamStep& a, float g, float* w, float* m, float* v) {
  const float mi = a.beta1 * *m + (1.0f - a.beta1) * g;
  const float vi = a.beta2 * *v + (1.0f - a.beta2) * g * g;
  *m = mi;
  *v = vi;
  *w = *w * a.decay - a.step_size * mi / (sqrtf(vi) * a.v_scale + a.epsilon);
}

// Label smoothing: what a row's loss is taken against. epsilon = 0: the
// one-hot label. Otherwise 1 - epsilon on the label and epsilon spread over
// every class (uniform, PyTorch's CrossEntropyLoss(label_smoothing=epsilon))
// or, with `neighbours`, over the classes next to the label in class order
// (label - 1 and label + 1; the one there is at the ends): for ordered
// grades, where a neighbouring grade is a lesser error than a distant one.
struct LabelSmoothing {
  float epsilon = 0;
  bool neighbours = false;
};
// q_k, the target's weight on class k for `label`. Sums to 1 over k.
HISTOCNN_HD float smoothed_target(const LabelSmoothing& s, int k, int label, int classes) {
  const float hot = k == label ? 1.0f : 0.0f;
  if (s.epsilon == 0) return hot;
  float share = 0;
  if (!s.neighbours) {
    share = 1.0f / float(classes);
  } else if (k == label - 1 || k == label + 1) {
    const int around = (label > 0 ? 1 : 0) + (label < classes - 1 ? 1 : 0);
    share = 1.0f / float(around);
  }
  return (1 - s.epsilon) * hot + s.epsilon * share;
}

// Softmax cross-entropy of one row of `classes` logits z.
// softmax_xent returns the row's loss (natural log) against `label` (in
// [0, classes)), smoothed by `s`: -sum_k q_k log p_k, and whether argmax ==
// label (ties go to the lower class); softmax_prob then gives p_k.
// softmax_xent_grad writes the probabilities (when `probs` is not null) and,
// when `d_logits` is not null, d_logits = (p - q) * d_scale (d_scale =
// 1 / count for a mean loss). d_logits may alias z: each element is read
// before it is written.
struct SoftmaxRow {
  float max;  // the largest logit
  float inv;  // 1 / sum_k exp(z_k - max)
  double loss;
  int correct;
};
HISTOCNN_HD SoftmaxRow softmax_xent(const float* z, int classes, int label,
                                    LabelSmoothing s = LabelSmoothing()) {
  float mx = z[0];
  int best = 0;
  for (int k = 1; k < classes; ++k)
    if (z[k] > mx) mx = z[k], best = k;
  float sum = 0;
  for (int k = 0; k < classes; ++k) sum += expf(z[k] - mx);
  SoftmaxRow r;
  r.max = mx;
  r.inv = 1.0f / sum;
  // -sum_k q_k log p_k = log(sum) + max - sum_k q_k z_k, as sum_k q_k = 1.
  double target_logit = z[label];
  if (s.epsilon != 0) {
    target_logit = 0;
    for (int k = 0; k < classes; ++k)
      target_logit += double(smoothed_target(s, k, label, classes)) * double(z[k]);
  }
  r.loss = -(target_logit - double(mx) - log(double(sum)));
  r.correct = best == label;
  return r;
}
HISTOCNN_HD float softmax_prob(const SoftmaxRow& r, float z) {
  return expf(z - r.max) * r.inv;
}
HISTOCNN_HD void softmax_xent_grad(const SoftmaxRow& r, const float* z, int classes, int label,
                                   float d_scale, float* probs, float* d_logits,
                                   LabelSmoothing s = LabelSmoothing()) {
  for (int k = 0; k < classes; ++k) {
    const float p = softmax_prob(r, z[k]);
    if (probs) probs[k] = p;
    if (d_logits) d_logits[k] = (p - smoothed_target(s, k, label, classes)) * d_scale;
  }
}

// The dropout stream of dense layer `layer` at training step `step` (1-based).
HISTOCNN_HD uint64_t dropout_stream(int64_t step, int layer) {
  return uint64_t(step) * 64 + uint64_t(layer);
}
// Inverted dropout: 0 or 1/(1-p) for element `index`.
HISTOCNN_HD float dropout_scale(uint64_t seed, uint64_t stream, uint64_t index, float p) {
  return counter_uniform(seed, stream, index) >= p ? 1.0f / (1.0f - p) : 0.0f;
}

// Dense-layer backward through ReLU and dropout: g = y > 0 ? g * mask : 0,
// with y the layer's output after ReLU and before dropout's scaling was
// applied in place (y > 0 exactly where ReLU' = 1 and the mask kept it, or
// y == 0 where dropped — the mask decides then, multiplying by 0).
HISTOCNN_HD float relu_dropout_grad(float y, float g, float mask) {
  return y > 0 ? g * mask : 0.0f;
}

// Dense layer output element `index` of a [rows, outputs] matrix after the
// GEMM: bias, ReLU (hidden layers), inverted dropout at training step `step`
// (1-based; the mask of dense layer `layer`). The CUDA kernel's body.
HISTOCNN_HD float dense_activation(float y, float bias, bool relu, float dropout, uint64_t seed,
                                   int64_t step, int layer, uint64_t index) {
  float v = y + bias;
  if (relu) v = v > 0 ? v : 0.0f;
  if (dropout > 0) v *= dropout_scale(seed, dropout_stream(step, layer), index, dropout);
  return v;
}
// Its backward, in place on the gradient: the mask is recomputed from the hash.
HISTOCNN_HD float dense_activation_backward(float y, float g, float dropout, uint64_t seed,
                                            int64_t step, int layer, uint64_t index) {
  const float mask =
      dropout > 0 ? dropout_scale(seed, dropout_stream(step, layer), index, dropout) : 1.0f;
  return relu_dropout_grad(y, g, mask);
}

// Bias gradients and the ReLU-on-pooled-map rule live in the libraries
// (cuDNN, oneDNN, cuBLAS gemv); only what no library provides is here.

}  // namespace histocnn::elementwise
