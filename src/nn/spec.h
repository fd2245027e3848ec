// The model's architecture as a small text spec, so users change the network
// without recompiling. One layer per line (or separated by ';'), '#' comments:
//
//   conv 32 kernel=3 pool=2     # 3x3 convolution, 32 filters, ReLU, 2x2 max-pool
//   conv 32 kernel=3 pool=2
//   conv 64 kernel=3 pool=2
//   dense 64                    # fully connected + ReLU
//   dropout 0.5
//   dense 2                     # the last dense layer gives the class logits
//
// Convolutions are 'valid' (no padding) and stride 1 like the Keras example the
// paper follows; `pad=same` pads by kernel/2. pool=1 means no pooling. Every
// conv and every dense but the last are followed by ReLU; the last dense feeds
// softmax cross-entropy and has one output per class: 2 (benign, malignant)
// for the GlaS labels, 5 for the Sirinukunwattana grades (data/labels.h).
//
//   conv 32 kernel=3 pool=2 bn  # + batch normalisation before the ReLU (the
//                               #   conv then has no bias, as in PyTorch)
//   gap                         # global average pooling of the last conv map:
//                               #   the first dense layer sees C features, not C*H*W
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/limits.h"

namespace histocnn {

struct ConvSpec {
  int filters = 0;
  int kernel = 3;
  int pool = 2;
  bool pad_same = false;
  bool batch_norm = false;
};

struct DenseSpec {
  int units = 0;
};

struct LayerSpec {
  enum class Kind { kConv, kDense, kDropout, kGlobalPool } kind;
  ConvSpec conv;
  DenseSpec dense;
  float dropout = 0.0f;
};

struct ModelSpec {
  std::vector<LayerSpec> layers;
  std::string text() const;  // canonical text, parseable by parse_model_spec
  int classes() const;       // the last dense layer's outputs
};

// The same network with its last dense layer giving `classes` logits (the
// default and preset networks are written for 2; a grade model needs 5).
ModelSpec with_classes(ModelSpec spec, int classes);

ModelSpec parse_model_spec(const std::string& text, const std::string& origin = "--model");
ModelSpec default_model_spec();  // the paper's network

// Shapes of every tensor of the network for one input size and batch. The
// index of a layer in `convs`/`denses` gives parameter names conv1, conv2, ..,
// fc1, fc2, .. (PyTorch layouts: OIHW for conv weights, [out, in] for dense).
struct ConvShape {
  int in_c, in_h, in_w;       // input
  int out_c, conv_h, conv_w;  // convolution output (before pooling)
  int out_h, out_w;           // after pooling
  int kernel, pad, pool;
  bool batch_norm;  // conv -> BN (batch statistics in training) -> ReLU -> pool
};
struct DenseShape {
  int in, out;
  bool relu;
  float dropout_after;  // dropout applied to this layer's output (0 = none)
};
struct NetworkShape {
  int batch, channels, height, width;
  std::vector<ConvShape> convs;
  std::vector<DenseShape> denses;
  bool global_pool = false;  // the first dense reads the channel means of the last map
  bool has_batch_norm() const;
  int classes() const { return denses.back().out; }  // the last dense layer's outputs
  int64_t parameter_count() const;
  // Multiply-adds x2 of one training step (forward + backward) for the batch.
  double training_flops() const;
  double forward_flops() const;
};

NetworkShape infer_shapes(const ModelSpec& spec, int batch, int height, int width,
                          int channels = 3);

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset;  // in floats, inside the flat parameter vector
  int64_t size;
  int fan_in, fan_out;
  bool is_bias;
  bool starts_at_one = false;  // batch-norm scales (PyTorch initialises them to 1)
};
// Parameters in a fixed order, packed into one flat vector (conv1.weight,
// conv1.bias, ..., fc1.weight, ...). The flat layout lets Adam update all
// parameters in one fused loop.
std::vector<ParamInfo> parameter_layout(const NetworkShape& shape);

// Batch-norm constants and momentum, PyTorch's defaults.
constexpr float kBatchNormEpsilon = 1e-5f;
constexpr float kBatchNormMomentum = 0.1f;

// The running statistics of the batch-norm layers (bnK.running_mean,
// bnK.running_var; PyTorch's buffers), packed like the parameters; empty
// for a network without batch norm.
std::vector<ParamInfo> buffer_layout(const NetworkShape& shape);

}  // namespace histocnn
