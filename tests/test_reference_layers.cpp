// The naive reference layers, checked by central finite differences of a
// random linear functional L = sum(r * y): dL/dx must match backward(r).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "nn/reference.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::random_vector;

// Checks backward gradient `analytic` of f at x against finite differences of
// L(x) = sum(r * f(x)), at a sample of coordinates.
void expect_gradient(const std::function<std::vector<float>(const std::vector<float>&)>& f,
                     std::vector<float> x, const std::vector<float>& r,
                     const std::vector<float>& analytic, double tolerance = 2e-2) {
  ASSERT_EQ(x.size(), analytic.size());
  const double h = 1e-2;
  auto loss = [&](const std::vector<float>& at) {
    const auto y = f(at);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += double(r[i]) * y[i];
    return s;
  };
  const size_t stride = std::max<size_t>(1, x.size() / 97);
  for (size_t i = 0; i < x.size(); i += stride) {
    const float saved = x[i];
    x[i] = saved + float(h);
    const double up = loss(x);
    x[i] = saved - float(h);
    const double down = loss(x);
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], numeric, tolerance * std::max(1.0, std::fabs(numeric)))
        << "index " << i;
  }
}

TEST(ReferenceLayers, ConvolutionGradientsMatchFiniteDifferences) {
  for (int pad : {0, 1}) {
    const int n = 2, c = 3, h = 7, w = 6, o = 4, k = 3;
    const int oh = h + 2 * pad - k + 1, ow = w + 2 * pad - k + 1;
    auto x = random_vector(n * c * h * w, 1);
    auto wt = random_vector(o * c * k * k, 2);
    auto b = random_vector(o, 3);
    auto r = random_vector(n * o * oh * ow, 4);
    std::vector<float> dx(x.size()), dw(wt.size()), db(o);
    reference::conv2d_backward(x.data(), wt.data(), r.data(), dx.data(), dw.data(), db.data(), n, c,
                               h, w, o, k, pad);
    auto run = [&](const std::vector<float>& xx, const std::vector<float>& ww,
                   const std::vector<float>& bb) {
      std::vector<float> y(r.size());
      reference::conv2d_forward(xx.data(), ww.data(), bb.data(), y.data(), n, c, h, w, o, k, pad);
      return y;
    };
    expect_gradient([&](const auto& v) { return run(v, wt, b); }, x, r, dx);
    expect_gradient([&](const auto& v) { return run(x, v, b); }, wt, r, dw);
    expect_gradient([&](const auto& v) { return run(x, wt, v); }, b, r, db);
  }
}

TEST(ReferenceLayers, ConvolutionForwardMatchesHandComputedValue) {
  // 1 image, 1 channel 3x3 of 1..9, one 2x2 kernel of ones, bias 0.5, no pad.
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w = {1, 1, 1, 1}, b = {0.5f}, y(4);
  reference::conv2d_forward(x.data(), w.data(), b.data(), y.data(), 1, 1, 3, 3, 1, 2, 0);
  EXPECT_FLOAT_EQ(y[0], 12.5f);
  EXPECT_FLOAT_EQ(y[3], 28.5f);
}

TEST(ReferenceLayers, MaxPoolFloorsAndRoutesGradientToTheMaximum) {
  const int n = 2, c = 2, h = 5, w = 7, p = 2;  // odd sizes: trailing row/col dropped
  // Distinct values 0.05 apart, so a finite-difference step never changes a window's maximum.
  std::vector<float> x(n * c * h * w);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.05f * float((i * 37) % x.size());
  auto r = random_vector(n * c * (h / p) * (w / p), 6);
  std::vector<float> dx(x.size());
  reference::maxpool_backward(x.data(), r.data(), dx.data(), n, c, h, w, p);
  auto run = [&](const std::vector<float>& v) {
    std::vector<float> y(r.size());
    reference::maxpool_forward(v.data(), y.data(), n, c, h, w, p);
    return y;
  };
  expect_gradient(run, x, r, dx);
  // The last row and column never receive gradient.
  for (int plane = 0; plane < n * c; ++plane)
    for (int xx = 0; xx < w; ++xx) EXPECT_EQ(dx[(size_t(plane) * h + h - 1) * w + xx], 0.0f);
}

TEST(ReferenceLayers, DenseAndReluGradientsMatchFiniteDifferences) {
  const int n = 3, in = 11, out = 5;
  auto x = random_vector(n * in, 7), w = random_vector(out * in, 8), b = random_vector(out, 9);
  auto r = random_vector(n * out, 10);
  std::vector<float> dx(x.size()), dw(w.size()), db(out);
  reference::dense_backward(x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data(), n, in,
                            out);
  auto run = [&](const std::vector<float>& xx, const std::vector<float>& ww,
                 const std::vector<float>& bb) {
    std::vector<float> y(r.size());
    reference::dense_forward(xx.data(), ww.data(), bb.data(), y.data(), n, in, out);
    return y;
  };
  expect_gradient([&](const auto& v) { return run(v, w, b); }, x, r, dx);
  expect_gradient([&](const auto& v) { return run(x, v, b); }, w, r, dw);
  expect_gradient([&](const auto& v) { return run(x, w, v); }, b, r, db);

  auto rx = random_vector(40, 11);
  for (auto& v : rx)
    if (std::fabs(v) < 0.05f) v = 0.3f;  // stay away from the kink
  auto rr = random_vector(40, 12);
  std::vector<float> rdx(40);
  reference::relu_backward(rx.data(), rr.data(), rdx.data(), 40);
  expect_gradient(
      [](const std::vector<float>& v) {
        std::vector<float> y(v.size());
        reference::relu_forward(v.data(), y.data(), int64_t(v.size()));
        return y;
      },
      rx, rr, rdx);
}

TEST(ReferenceLayers, SoftmaxCrossEntropyGradientAndPadding) {
  for (const int classes : {2, 5}) {
    const int n = 4, count = 3;
    auto logits = random_vector(n * classes, 13 + classes, -3, 3);
    std::vector<int32_t> labels = {0, 1, classes - 1, 0};
    std::vector<float> d(size_t(n) * classes);
    reference::softmax_cross_entropy(logits.data(), labels.data(), n, classes, count, d.data(),
                                     nullptr);
    for (int k = 0; k < classes; ++k) EXPECT_EQ(d[size_t(3 * classes + k)], 0.0f);  // padding
    std::vector<float> one = {1.0f};
    expect_gradient(
        [&](const std::vector<float>& v) {
          return std::vector<float>{float(reference::softmax_cross_entropy(
              v.data(), labels.data(), n, classes, count, nullptr, nullptr))};
        },
        logits, one, d, 1e-2);
  }
}

// Smoothed targets: the reference's loss against finite differences, and
// the one loss function the backends share (elementwise::softmax_xent, run
// here on the host) against the reference, row by row.
TEST(ReferenceLayers, SmoothedSoftmaxCrossEntropyMatchesFiniteDifferencesAndTheBackends) {
  using elementwise::LabelSmoothing;
  const int n = 5, count = 5, classes = 5;
  const auto logits = random_vector(n * classes, 31, -3, 3);
  const std::vector<int32_t> labels = {0, 1, 2, 3, 4};  // both ends and the middle
  for (const LabelSmoothing s : {LabelSmoothing{0.2f, false}, LabelSmoothing{0.3f, true}}) {
    std::vector<float> d(size_t(n) * classes);
    const double loss = reference::softmax_cross_entropy(logits.data(), labels.data(), n, classes,
                                                         count, d.data(), nullptr, s);
    std::vector<float> one = {1.0f};
    expect_gradient(
        [&](const std::vector<float>& v) {
          return std::vector<float>{float(reference::softmax_cross_entropy(
              v.data(), labels.data(), n, classes, count, nullptr, nullptr, s))};
        },
        logits, one, d, 1e-2);
    double sum = 0;
    for (int r = 0; r < n; ++r) {
      const float* z = logits.data() + r * classes;
      const elementwise::SoftmaxRow row = elementwise::softmax_xent(z, classes, labels[r], s);
      std::vector<float> grad(classes);
      elementwise::softmax_xent_grad(row, z, classes, labels[r], 1.0f / count, nullptr, grad.data(),
                                     s);
      for (int k = 0; k < classes; ++k)
        EXPECT_NEAR(grad[size_t(k)], d[size_t(r * classes + k)], 1e-6) << "row " << r;
      sum += row.loss;
      double target = 0;
      for (int k = 0; k < classes; ++k)
        target += elementwise::smoothed_target(s, k, labels[r], classes);
      EXPECT_NEAR(target, 1.0, 1e-6);
    }
    EXPECT_NEAR(sum / count, loss, 1e-5);
  }
  // Neighbours: the end classes give all of epsilon to their one neighbour,
  // the middle ones half to each; nothing reaches a distant class.
  const LabelSmoothing near{0.2f, true};
  EXPECT_FLOAT_EQ(elementwise::smoothed_target(near, 1, 0, 5), 0.2f);
  EXPECT_FLOAT_EQ(elementwise::smoothed_target(near, 1, 2, 5), 0.1f);
  EXPECT_FLOAT_EQ(elementwise::smoothed_target(near, 4, 2, 5), 0.0f);
  EXPECT_FLOAT_EQ(elementwise::smoothed_target(near, 2, 2, 5), 0.8f);
  EXPECT_FLOAT_EQ(elementwise::smoothed_target({0.2f, false}, 4, 2, 5), 0.04f);
}

TEST(ReferenceLayers, BatchNormGradientsMatchFiniteDifferences) {
  const int n = 3, c = 4, hw = 5;
  auto x = random_vector(n * c * hw, 21, -2, 2);
  auto gamma = random_vector(c, 22, 0.5, 1.5);
  auto beta = random_vector(c, 23);
  auto r = random_vector(n * c * hw, 24);
  std::vector<float> y(x.size()), mean(c), var(c), dx(x.size()), dgamma(c), dbeta(c);
  auto run = [&](const std::vector<float>& xx, const std::vector<float>& g,
                 const std::vector<float>& b) {
    std::vector<float> out(xx.size()), m(c), v(c);
    reference::batchnorm_forward_train(xx.data(), g.data(), b.data(), out.data(), m.data(),
                                       v.data(), n, c, hw);
    return out;
  };
  reference::batchnorm_forward_train(x.data(), gamma.data(), beta.data(), y.data(), mean.data(),
                                     var.data(), n, c, hw);
  reference::batchnorm_backward(x.data(), gamma.data(), mean.data(), var.data(), r.data(),
                                dx.data(), dgamma.data(), dbeta.data(), n, c, hw);
  expect_gradient([&](const auto& v) { return run(v, gamma, beta); }, x, r, dx, 3e-2);
  expect_gradient([&](const auto& v) { return run(x, v, beta); }, gamma, r, dgamma);
  expect_gradient([&](const auto& v) { return run(x, gamma, v); }, beta, r, dbeta);
  // Known answer: every channel comes out with mean beta and standard
  // deviation |gamma| (up to eps), and inference with the batch's own
  // statistics as running statistics reproduces training's output.
  for (int ch = 0; ch < c; ++ch) {
    double m = 0, sq = 0;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) m += y[(size_t(i) * c + ch) * hw + p];
    m /= n * hw;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) {
        const double d = y[(size_t(i) * c + ch) * hw + p] - m;
        sq += d * d;
      }
    EXPECT_NEAR(m, beta[size_t(ch)], 1e-5);
    EXPECT_NEAR(std::sqrt(sq / (n * hw)), std::fabs(gamma[size_t(ch)]), 1e-3);
  }
  std::vector<float> inferred(x.size());
  reference::batchnorm_forward_infer(x.data(), gamma.data(), beta.data(), mean.data(), var.data(),
                                     inferred.data(), n, c, hw);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(inferred[i], y[i], 1e-5);
}

TEST(ReferenceLayers, GlobalAveragePoolingGradientAndValue) {
  const int n = 2, c = 3, hw = 6;
  auto x = random_vector(n * c * hw, 31);
  auto r = random_vector(n * c, 32);
  std::vector<float> y(n * c), dx(x.size());
  reference::global_avgpool_forward(x.data(), y.data(), n, c, hw);
  double first = 0;
  for (int p = 0; p < hw; ++p) first += x[size_t(p)];
  EXPECT_NEAR(y[0], first / hw, 1e-6);
  reference::global_avgpool_backward(r.data(), dx.data(), n, c, hw);
  expect_gradient(
      [&](const std::vector<float>& v) {
        std::vector<float> out(n * c);
        reference::global_avgpool_forward(v.data(), out.data(), n, c, hw);
        return out;
      },
      x, r, dx);
}

}  // namespace
}  // namespace histocnn
