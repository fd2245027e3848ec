// Grad-CAM: known answers (global pooling + one dense layer is CAM), the
// channel weights against finite differences, the probabilities against the
// reference network, and explanations stitched over the crops predict reads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "nn/grad_cam.h"
#include "nn/reference.h"
#include "test_util.h"
#include "train/explain.h"

namespace histocnn {
namespace {

struct Net {
  NetworkShape shape;
  Parameters params;
  Buffers buffers;
  std::vector<float> image;
};

Net make_net(const std::string& spec, int size, uint64_t seed) {
  Net n;
  n.shape = infer_shapes(parse_model_spec(spec), 1, size, size);
  n.params = Parameters::glorot(n.shape, seed);
  n.buffers = Buffers::initial(n.shape);
  n.image = testing::random_vector(size_t(3) * size * size, seed + 1);
  return n;
}

// The class log-odds log p1 - log p0 of the reference network in inference.
double log_odds_of(const Net& n) {
  Buffers b = n.buffers;
  const int32_t label = 0;
  const auto r =
      reference::network_forward_backward(n.shape, n.params, n.image.data(), &label, 1, false, 0, 0,
                                          n.shape.has_batch_norm() ? &b : nullptr);
  return std::log(double(r.probs[1])) - std::log(double(r.probs[0]));
}

TEST(GradCam, GlobalPoolingAndOneDenseLayerIsClassActivationMapping) {
  // CAM (Zhou et al. 2016): the map is sum_k W[c, k] A_k / HW.
  Net n = make_net("conv 4 kernel=3 pool=1\ngap\ndense 2", 12, 3);
  const ConvShape& c = n.shape.convs.back();
  const int hw = c.conv_h * c.conv_w;
  std::vector<float> a(size_t(c.out_c) * hw);
  reference::conv2d_forward(n.image.data(), n.params.data(n.params.info("conv1.weight")),
                            n.params.data(n.params.info("conv1.bias")), a.data(), 1, 3, 12, 12,
                            c.out_c, 3, 0);
  reference::relu_forward(a.data(), a.data(), int64_t(a.size()));
  const float* w = n.params.data(n.params.info("fc1.weight"));
  for (int target : {0, 1}) {
    const ClassActivationMap m = grad_cam(n.shape, n.params, n.buffers, n.image.data(), target);
    ASSERT_EQ(m.width, c.conv_w);
    ASSERT_EQ(m.height, c.conv_h);
    EXPECT_EQ(m.target, target);
    for (int p = 0; p < hw; ++p) {
      double want = 0;
      for (int k = 0; k < c.out_c; ++k)
        want += w[target * c.out_c + k] * a[size_t(k) * hw + p] / hw;
      EXPECT_NEAR(m.values[size_t(p)], std::max(want, 0.0), 1e-5) << "pixel " << p;
    }
  }
}

TEST(GradCam, ChannelWeightsAreTheMeanGradientAndProbabilitiesTheNetworks) {
  // With the last convolution's bias raised so its ReLU passes everything,
  // d(log-odds)/d bias_k = sum over positions of d(log-odds)/dA_k = HW x
  // (alpha_k for class 1 - alpha_k for class 0).
  for (const char* spec :
       {"conv 6 kernel=3 pool=2\nconv 5 kernel=3 pool=2\ndense 7\ndropout 0.5\ndense 2",
        "conv 6 kernel=3 pool=2 bn\nconv 5 kernel=3 pool=1 bn\ngap\ndense 2"}) {
    Net n = make_net(spec, 20, 9);
    const std::string last = std::to_string(n.shape.convs.size());
    const bool bn = n.shape.has_batch_norm();
    float* shift = n.params.data(n.params.info((bn ? "bn" : "conv") + last + ".bias"));
    for (int k = 0; k < n.shape.convs.back().out_c; ++k) shift[k] += 8.0f;
    const ClassActivationMap m1 = grad_cam(n.shape, n.params, n.buffers, n.image.data(), 1);
    const ClassActivationMap m0 = grad_cam(n.shape, n.params, n.buffers, n.image.data(), 0);
    const ConvShape& c = n.shape.convs.back();
    const double hw = double(c.conv_h) * c.conv_w;
    for (int k = 0; k < c.out_c; ++k) {
      const float keep = shift[k];
      const double h = 0.05;
      shift[k] = float(keep + h);
      const double up = log_odds_of(n);
      shift[k] = float(keep - h);
      const double down = log_odds_of(n);
      shift[k] = keep;
      // Batch norm: the bias (beta) adds after normalisation, so the same holds.
      EXPECT_NEAR((up - down) / (2 * h), hw * (m1.weights[size_t(k)] - m0.weights[size_t(k)]),
                  2e-3 * (1 + std::fabs(up - down) / (2 * h)))
          << spec << " channel " << k;
    }
    Buffers b = n.buffers;
    const int32_t label = 0;
    const auto r = reference::network_forward_backward(n.shape, n.params, n.image.data(), &label, 1,
                                                       false, 0, 0, bn ? &b : nullptr);
    EXPECT_NEAR(m1.probs[1], r.probs[1], 1e-5) << spec;
    EXPECT_EQ(grad_cam(n.shape, n.params, n.buffers, n.image.data()).target,
              r.probs[1] > r.probs[0] ? 1 : 0);
  }
  Net n = make_net("conv 4 kernel=3 pool=2\ndense 2", 10, 1);
  EXPECT_THROW(grad_cam(n.shape, n.params, n.buffers, n.image.data(), 2), Error);
}

TEST(Explain, PredictionCropsSpanTheImageAndMapsCoverIt) {
  ModelFile model;
  model.spec = parse_model_spec("conv 4 kernel=3 pool=2\ndense 2");
  model.width = model.height = 16;
  model.crop = "40x30";
  const NetworkShape shape = infer_shapes(model.spec, 1, 16, 16);
  model.params = Parameters::glorot(shape, 5);
  const auto boxes = prediction_crops(100, 60, model, 3);
  ASSERT_EQ(boxes.size(), 9u);
  EXPECT_EQ(boxes.front().x, 0);
  EXPECT_EQ(boxes.back().x + boxes.back().width, 100);
  EXPECT_EQ(boxes.back().y + boxes.back().height, 60);
  EXPECT_EQ(prediction_crops(100, 60, model, 1).front().x, 30);
  EXPECT_THROW(prediction_crops(30, 60, model, 3), Error);
  // An image of the crop's size has one box: the grid would repeat it.
  ASSERT_EQ(prediction_crops(40, 30, model, 3).size(), 1u);
  EXPECT_EQ(prediction_crops(40, 30, model, 3).front().x, 0);
  EXPECT_EQ(prediction_crops(41, 30, model, 3).size(), 2u);  // x = 0 or 1; y = 0
  Image image;
  image.width = 100;
  image.height = 60;
  const auto noise = testing::random_vector(size_t(3) * 100 * 60, 8, 0, 255);
  for (float v : noise) image.rgb.push_back(uint8_t(v));
  const Explanation e = explain_image(image, {model}, boxes, 1);
  ASSERT_EQ(e.values.size(), size_t(100) * 60);
  const float top = *std::max_element(e.values.begin(), e.values.end());
  EXPECT_NEAR(top, 1.0f, 1e-6);
  for (float v : e.values) ASSERT_TRUE(v >= 0 && v <= 1) << v;
  model.crop = "whole";
  EXPECT_EQ(prediction_crops(100, 60, model, 3).size(), 1u);
}

}  // namespace
}  // namespace histocnn
