// Temperature scaling: the tempered probability, the fit (it recovers a known
// temperature, never makes the likelihood worse, says when it hit a bound)
// and what eval does with each member's temperature.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "train/temperature.h"

namespace histocnn {
namespace {

TEST(Temperature, TemperingKeepsTheClassAndMovesTheProbabilityTowardOrAwayFromAHalf) {
  EXPECT_DOUBLE_EQ(tempered_p_malignant(0.2, 0.8, 1.0), 0.8);
  // log-odds log 4, halved: log 2, so P = 2/3; doubled: log 16, P = 16/17.
  EXPECT_NEAR(tempered_p_malignant(0.2, 0.8, 2.0), 2.0 / 3, 1e-12);
  EXPECT_NEAR(tempered_p_malignant(0.2, 0.8, 0.5), 16.0 / 17, 1e-12);
  EXPECT_NEAR(tempered_p_malignant(0.9, 0.1, 2.0), 0.25, 1e-12);
  EXPECT_DOUBLE_EQ(tempered_p_malignant(0.5, 0.5, 7.0), 0.5);
  // A probability the float softmax rounded to 1 keeps its log-odds (69) in
  // the other class's: T = 10 gives sigmoid(6.9), not 1 or a clamp.
  EXPECT_NEAR(tempered_p_malignant(1e-30, 1.0, 10.0), 1 / (1 + std::exp(-6.907755)), 1e-6);
  EXPECT_NEAR(log_odds(1e-30, 1.0), 69.0776, 1e-3);
  EXPECT_EQ(log_odds(0.0, 1.0), 200.0);
  EXPECT_EQ(tempered_p_malignant(1.0, 0.0, 3.0) < 1e-20, true);
  EXPECT_THROW(tempered_p_malignant(0.2, 0.8, 0.0), Error);
  EXPECT_THROW(tempered_p_malignant(0.2, 0.8, std::nan("")), Error);
  EXPECT_THROW(log_odds(0.0, 0.0), Error);
}

// Labels drawn from sigmoid(z / T): the fit finds T.
void expect_recovers(double truth) {
  std::mt19937_64 rng(11);
  std::normal_distribution<double> logit(0.0, 4.0);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> z;
  std::vector<int> labels;
  for (int i = 0; i < 20000; ++i) {
    z.push_back(logit(rng));
    labels.push_back(u(rng) < 1 / (1 + std::exp(-z.back() / truth)) ? 1 : 0);
  }
  const TemperatureFit fit = fit_temperature(z, labels);
  EXPECT_NEAR(fit.temperature, truth, 0.08 * truth) << "true temperature " << truth;
  EXPECT_LE(fit.nll_after, fit.nll_before);
  EXPECT_NEAR(fit.nll_after, temperature_nll(z, labels, fit.temperature), 1e-12);
  EXPECT_FALSE(fit.at_bound);
  EXPECT_EQ(fit.count, 20000);
  EXPECT_LE(fit.ece_after, fit.ece_before);
  if (!fit.declined.empty()) return;  // left at 1: nothing to minimise
  // The minimum: a step either way is no better.
  EXPECT_GE(temperature_nll(z, labels, fit.temperature * 1.05), fit.nll_after);
  EXPECT_GE(temperature_nll(z, labels, fit.temperature / 1.05), fit.nll_after);
}

TEST(Temperature, TheFitRecoversAKnownTemperature) {
  expect_recovers(2.5);  // an overconfident network
  expect_recovers(1.0);  // already calibrated: left (nearly) alone
  expect_recovers(0.6);  // an underconfident one
}

TEST(Temperature, SeparatedOrEmptyValidationSetsAreSaidSo) {
  // Every prediction right: sharper is always likelier, so the search runs
  // into its bound; the model is left alone and the fit says why.
  const TemperatureFit separated = fit_temperature({3, -2, 5, -4}, {1, 0, 1, 0});
  EXPECT_TRUE(separated.at_bound);
  EXPECT_EQ(separated.temperature, 1.0);
  EXPECT_EQ(separated.nll_after, separated.nll_before);
  // Nearly random predictions: as soft as allowed, and applied.
  const TemperatureFit random = fit_temperature({8, 8, -8, -8}, {1, 0, 1, 0});
  EXPECT_TRUE(random.at_bound);
  EXPECT_NEAR(random.temperature, kMaxTemperature, 0.01 * kMaxTemperature);
  EXPECT_LT(random.nll_after, random.nll_before);
  const TemperatureFit none = fit_temperature({}, {});
  EXPECT_EQ(none.temperature, 1.0);
  EXPECT_EQ(none.count, 0);
  // A softer T that the likelihood wants but that raises the calibration
  // error is declined: 40 right at log-odds 3, 20 right at 10 and one wrong
  // at 10. The likelihood wants T = 1.25, which moves the 40 from P = 0.953
  // to 0.917 (all right): the error rises from 0.015 to 0.038.
  std::vector<double> z(40, 3.0);
  z.insert(z.end(), 21, 10.0);
  std::vector<int> y(60, 1);
  y.push_back(0);
  const TemperatureFit softer = fit_temperature(z, y);
  EXPECT_EQ(softer.temperature, 1.0);
  EXPECT_EQ(softer.declined, "raised the calibration error");
  EXPECT_TRUE(softer.to_json().contains("declined"));
  const auto j = separated.to_json();
  for (const char* key : {"temperature", "nll_before", "nll_after", "ece_before", "ece_after",
                          "fitted_on", "at_bound"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_THROW(fit_temperature({1.0}, {}), Error);
  EXPECT_THROW(fit_temperature({std::nan("")}, {1}), Error);
}

}  // namespace
}  // namespace histocnn
