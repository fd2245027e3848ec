// Gated attention multiple-instance learning (Ilse, Tomczak & Welling 2018,
// "Attention-based Deep Multiple Instance Learning", the aggregator of
// CLAM and most slide-level models since): a slide is a bag of its tiles'
// feature vectors h_1..h_N (slide/tile_features.h), its label the only
// supervision. With x_i the standardised h_i (the training tiles' mean and
// deviation per feature, fixed before training):
//
//   a_i = w . (tanh(V x_i + b_V) * sigmoid(U x_i + b_U))   attention score
//   alpha = softmax(a)                                       over the bag
//   z = sum_i alpha_i x_i                                    the slide's vector
//   P(malignant) = sigmoid(c . z + c_0)
//
// The attention alpha_i says which tiles the call rests on: a heat map a
// pathologist can check. Binary cross-entropy; gradients by hand (checked
// by finite differences in tests/test_attention_mil.cpp), in double.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace histocnn {

struct AttentionMil {
  int features = 0;   // D, the tiles' feature width
  int attention = 0;  // L, the attention branch's width
  // Fixed standardisation of the features: x = (h - mean) * inv_sd.
  std::vector<float> mean, inv_sd;
  // Flat parameters, in this order: V [L x D], b_V [L], U [L x D], b_U [L],
  // w [L], c [D], c_0 [1].
  std::vector<float> params;

  // Glorot-uniform V, U and w, a zero classifier and zero biases (a
  // deterministic function of the seed); mean 0 and inv_sd 1 until
  // standardise() is called.
  static AttentionMil initial(int features, int attention, uint64_t seed);
  static int64_t parameter_count(int features, int attention);
  // The flat parameters' blocks in order, as the model file names them:
  // attention_V, attention_bV, attention_U, attention_bU, attention_w,
  // classifier_weight [1, D], classifier_bias [1].
  struct Block {
    std::string name;
    int64_t offset;
    std::vector<int64_t> shape;
  };
  static std::vector<Block> parameter_blocks(int features, int attention);

  // Sets mean and inv_sd from every tile of these bags (features wide
  // each); a feature that never varies gets inv_sd 1.
  void standardise(const std::vector<const std::vector<float>*>& bags);

  struct Output {
    double logit = 0, p_malignant = 0;
    std::vector<double> attention;  // alpha, one per tile, summing to 1
  };
  // requires: tiles holds n >= 1 rows of `features` floats.
  Output forward(const float* tiles, int64_t n) const;
  // The bag's binary cross-entropy for label (0 benign, 1 malignant), its
  // gradient added to grads (params.size() values).
  double loss_and_gradient(const float* tiles, int64_t n, int label,
                           std::vector<double>& grads) const;
};

}  // namespace histocnn
