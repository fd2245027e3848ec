// Training-loop pieces without a network: learning-rate schedules, ROC
// curves and the dihedral transforms of test-time augmentation.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "data/augment.h"
#include "train/metrics.h"
#include "train/schedule.h"

namespace histocnn {
namespace {

TEST(Schedule, KnownValuesOfEveryKind) {
  LrSchedule constant;
  EXPECT_DOUBLE_EQ(learning_rate_at(constant, 1e-3, 123, 10, 5), 1e-3);
  LrSchedule cosine;
  cosine.kind = "cosine";
  // 10 epochs of 4 steps: half-way the rate is half, the last step near 0.
  EXPECT_DOUBLE_EQ(learning_rate_at(cosine, 1.0, 0, 4, 10), 1.0);
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 20, 4, 10), 0.5, 1e-12);
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 39, 4, 10), 0.5 * (1 + std::cos(M_PI * 39 / 40)),
              1e-12);
  cosine.min_fraction = 0.1;
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 40, 4, 10), 0.1, 1e-12);  // past the end: the floor
  // Warm-up: 2 epochs of 4 steps rise linearly to the base rate, then the
  // cosine spans the remaining 32 steps.
  cosine.warmup_epochs = 2;
  cosine.min_fraction = 0;
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 0, 4, 10), 1.0 / 8, 1e-12);
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 7, 4, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 8, 4, 10), 1.0, 1e-12);
  EXPECT_NEAR(learning_rate_at(cosine, 1.0, 24, 4, 10), 0.5, 1e-12);
  LrSchedule step;
  step.kind = "step";
  step.step_epochs = 3;
  step.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate_at(step, 1.0, 11, 4, 10), 1.0);   // epoch 2
  EXPECT_DOUBLE_EQ(learning_rate_at(step, 1.0, 12, 4, 10), 0.5);   // epoch 3
  EXPECT_DOUBLE_EQ(learning_rate_at(step, 1.0, 24, 4, 10), 0.25);  // epoch 6
}

TEST(Schedule, InconsistentSchedulesNameTheirFlag) {
  auto message = [](LrSchedule s) {
    try {
      validate(s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  LrSchedule s;
  s.kind = "linear";
  EXPECT_EQ(message(s).rfind("--lr-schedule", 0), 0u);
  s = {};
  s.warmup_epochs = -1;
  EXPECT_EQ(message(s).rfind("--warmup-epochs", 0), 0u);
  s = {};
  s.gamma = 0;
  EXPECT_EQ(message(s).rfind("--lr-gamma", 0), 0u);
  s = {};
  s.min_fraction = 2;
  EXPECT_EQ(message(s).rfind("--lr-min-fraction", 0), 0u);
  EXPECT_EQ(message(LrSchedule{}), "");
}

TEST(Roc, TrapezoidAreaEqualsTheRankAucWithTies) {
  Rng rng(5);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<Prediction> p;
    const int n = 2 + int(rng.below(60));
    for (int i = 0; i < n; ++i)  // coarse scores: many ties
      p.push_back({float(rng.below(6)) / 5.0f, int(rng.below(2))});
    p[0].label = 0, p[1].label = 1;
    const auto curve = roc_curve(p);
    ASSERT_GE(curve.size(), 2u);
    EXPECT_EQ(curve.front(), std::make_pair(0.0, 0.0));
    EXPECT_EQ(curve.back(), std::make_pair(1.0, 1.0));
    double area = 0;
    for (size_t i = 1; i < curve.size(); ++i) {
      EXPECT_GE(curve[i].first, curve[i - 1].first);
      EXPECT_GE(curve[i].second, curve[i - 1].second);
      area += (curve[i].first - curve[i - 1].first) * (curve[i].second + curve[i - 1].second) / 2;
    }
    EXPECT_NEAR(area, compute_metrics(p).auc, 1e-12);
  }
  EXPECT_TRUE(roc_curve({{0.3f, 1}, {0.9f, 1}}).empty());  // one class
}

TEST(Tta, DihedralTransformsAreTheEightSymmetriesOfASquare) {
  const int w = 5, h = 5, c = 2;
  std::vector<float> image(size_t(c) * w * h);
  for (size_t i = 0; i < image.size(); ++i) image[i] = float(i);
  std::set<std::vector<float>> seen;
  std::vector<float> out(image.size()), twice(image.size());
  for (int k = 0; k < dihedral_count(w, h); ++k) {
    dihedral_chw(image.data(), out.data(), c, w, h, k);
    seen.insert(out);
    // Each is a permutation within each channel.
    for (int ch = 0; ch < c; ++ch) {
      std::multiset<float> a(image.begin() + ch * w * h, image.begin() + (ch + 1) * w * h);
      std::multiset<float> b(out.begin() + ch * w * h, out.begin() + (ch + 1) * w * h);
      EXPECT_EQ(a, b);
    }
  }
  EXPECT_EQ(seen.size(), 8u);
  dihedral_chw(image.data(), out.data(), c, w, h, 0);
  EXPECT_EQ(out, image);
  // A quarter turn four times is the identity (k = 5: transpose + flip x).
  std::vector<float> turned(image.begin(), image.end());
  for (int i = 0; i < 4; ++i) {
    dihedral_chw(turned.data(), twice.data(), c, w, h, 5);
    turned.swap(twice);
  }
  EXPECT_EQ(turned, image);
  EXPECT_EQ(dihedral_count(6, 4), 4);
  EXPECT_THROW(dihedral_chw(image.data(), out.data(), c, 6, 4, 4), Error);
}

}  // namespace
}  // namespace histocnn
