// Grad-CAM (Selvaraju et al. 2017): where in its input a network looked for
// a class. The last convolution's ReLU maps A_k (before its pooling) are
// weighted by alpha_k, the spatial mean of the gradient of the class's logit
// with respect to A_k, and summed: map = ReLU(sum_k alpha_k A_k), at that
// convolution's resolution.
//
// Computed with the reference layers (nn/reference.h) on one input in
// inference mode (no dropout, batch norm with its running statistics): a few
// hundred million multiply-adds at 200 px, fine for the images a user asks
// to explain, and the same numbers on every backend.
#pragma once

#include <vector>

#include "nn/params.h"
#include "nn/spec.h"

namespace histocnn {

struct ClassActivationMap {
  int width = 0, height = 0;   // the last convolution's output size
  std::vector<float> values;   // height x width, >= 0, not normalised
  int target = 0;              // the class explained
  std::vector<float> weights;  // alpha_k per channel of the last convolution
  std::vector<float> probs;    // the network's class probabilities for the input
};

// requires: shape of batch 1 (infer_shapes(spec, 1, H, W)); params (and
//           buffers, for batch norm) of that shape; image: 3 x H x W,
//           normalised as the network was trained; target in [-1, classes):
//           -1 explains the predicted class.
ClassActivationMap grad_cam(const NetworkShape& shape, const Parameters& params,
                            const Buffers& buffers, const float* image, int target = -1);

}  // namespace histocnn
