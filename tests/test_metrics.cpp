// Known answers for the metrics a paper would quote: ROC AUC with ties, the
// confusion at 0.5, and crop -> image -> patient aggregation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "train/bootstrap.h"
#include "train/calibration.h"
#include "train/metrics.h"

namespace histocnn {
namespace {

TEST(Metrics, AucCountsTiesAsHalf) {
  // Positives 0.8, 0.5; negatives 0.5, 0.2: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
  const Metrics m = compute_metrics({{0.8f, 1}, {0.5f, 1}, {0.5f, 0}, {0.2f, 0}});
  EXPECT_DOUBLE_EQ(m.auc, 0.875);
  const Metrics all_tied = compute_metrics({{0.5f, 1}, {0.5f, 0}, {0.5f, 1}, {0.5f, 0}});
  EXPECT_DOUBLE_EQ(all_tied.auc, 0.5);
  EXPECT_TRUE(std::isnan(compute_metrics({{0.9f, 1}, {0.4f, 1}}).auc)) << "one class: undefined";
}

TEST(Metrics, ConfusionAndBalancedAccuracyAtOneHalf) {
  // 3 benign (one called malignant), 1 malignant (called malignant).
  const Metrics m = compute_metrics({{0.1f, 0}, {0.7f, 0}, {0.3f, 0}, {0.9f, 1}});
  EXPECT_EQ(m.tn, 2);
  EXPECT_EQ(m.fp, 1);
  EXPECT_EQ(m.fn, 0);
  EXPECT_EQ(m.tp, 1);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
  EXPECT_DOUBLE_EQ(m.balanced_accuracy, (2.0 / 3.0 + 1.0) / 2);
}

TEST(Metrics, CropsAggregateToImagesAndPatientsByMeanProbability) {
  const std::vector<Prediction> crops = {{0.9f, 1}, {0.3f, 1}, {0.2f, 0}, {0.4f, 0}, {0.8f, 0}};
  const std::vector<std::string> image = {"a", "a", "b", "b", "c"};
  const std::vector<std::string> patient = {"p1", "p1", "p1", "p1", "p2"};
  auto find = [](const std::vector<Prediction>& v, int label, float p) {
    for (const auto& x : v)
      if (x.label == label && std::fabs(x.p_malignant - p) < 1e-6f) return true;
    return false;
  };
  const auto images = aggregate(crops, image);
  ASSERT_EQ(images.size(), 3u);
  EXPECT_TRUE(find(images, 1, 0.6f)) << "image a: mean of 0.9 and 0.3";
  EXPECT_TRUE(find(images, 0, 0.3f)) << "image b";
  EXPECT_TRUE(find(images, 0, 0.8f)) << "image c";
  const Metrics per_image = compute_metrics(images);
  EXPECT_EQ(per_image.tp, 1);
  EXPECT_EQ(per_image.fp, 1);
  EXPECT_EQ(per_image.tn, 1);
  // A group's label is the majority of its members'; a tie counts as benign.
  const auto patients = aggregate(crops, patient);
  ASSERT_EQ(patients.size(), 2u);
  EXPECT_TRUE(find(patients, 0, 0.45f)) << "p1: 2 malignant + 2 benign crops, mean 0.45";
  EXPECT_TRUE(find(patients, 0, 0.8f)) << "p2";
}

// A NaN score is never ranked (sorting NaN is undefined; the tie loop would
// never end): it is an error naming how many there are.
TEST(Metrics, NonFiniteScoresAreAnErrorNotAHang) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<Prediction> scores = {{0.2f, 0}, {nan, 1}, {0.9f, 1}, {nan, 0}};
  try {
    compute_metrics(scores);
    FAIL() << "expected NonFiniteScores";
  } catch (const NonFiniteScores& e) {
    EXPECT_NE(std::string(e.what()).find("2 of 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(compute_metrics({{std::numeric_limits<float>::infinity(), 1}, {0.1f, 0}}),
               NonFiniteScores);
}

TEST(Bootstrap, PercentilesInterpolateLikeNumpyAndSkipNaN) {
  std::vector<double> values;
  for (int v = 1; v <= 100; ++v) values.push_back(v);
  values.push_back(std::nan(""));
  const Interval i = percentile_interval(values);
  EXPECT_NEAR(i.low, 3.475, 1e-12);  // numpy.percentile(range(1, 101), 2.5)
  EXPECT_NEAR(i.high, 97.525, 1e-12);
  EXPECT_EQ(i.samples, 100);
}

// Two patients, one always right and one always wrong: resampling patients
// (each with all its crops) gives crop accuracy 0, 0.5 or 1; resampling crops
// alone would give an interval near 0.5 +- 0.2 — the error the bootstrap by
// patient exists to avoid.
TEST(Bootstrap, PatientsMoveWithAllTheirCrops) {
  EvalReport r;
  for (int c = 0; c < 10; ++c) {
    r.crops.push_back({0.9f, 1});  // patient A: right
    r.crop_images.push_back("a" + std::to_string(c % 2));
    r.crop_patients.push_back("A");
    r.crops.push_back({0.9f, 0});  // patient B: wrong
    r.crop_images.push_back("b" + std::to_string(c % 2));
    r.crop_patients.push_back("B");
  }
  const BootstrapIntervals b = patient_bootstrap(r, 400, 7);
  EXPECT_EQ(b.per_crop.accuracy.low, 0.0);
  EXPECT_EQ(b.per_crop.accuracy.high, 1.0);
  EXPECT_EQ(b.per_patient.accuracy.low, 0.0);
  EXPECT_EQ(b.per_patient.accuracy.high, 1.0);
  // AUC exists only in resamples holding both patients (both classes).
  EXPECT_GT(b.per_crop.auc.samples, 100);
  EXPECT_LT(b.per_crop.auc.samples, 300);
  // Deterministic for a seed.
  EXPECT_EQ(patient_bootstrap(r, 400, 7).to_json(), b.to_json());
  // All right: the interval is the point.
  for (auto& p : r.crops) p.p_malignant = p.label ? 0.9f : 0.1f;
  const BootstrapIntervals perfect = patient_bootstrap(r, 200, 7);
  EXPECT_EQ(perfect.per_image.accuracy.low, 1.0);
  EXPECT_EQ(perfect.per_image.accuracy.high, 1.0);
  r.crop_patients.pop_back();
  EXPECT_THROW(patient_bootstrap(r, 10, 1), Error);
}

TEST(Calibration, ReliabilityBinsAndExpectedCalibrationError) {
  // Bin [0.1, 0.2): four predictions of 0.15, one malignant (gap 0.1); bin
  // [0.9, 1]: P = 0.95 twice and P = 1 (the last bin holds 1), all malignant
  // (gap 1 - 0.9667).
  const std::vector<Prediction> p = {{0.15f, 0}, {0.15f, 0}, {0.15f, 1}, {0.15f, 0},
                                     {0.95f, 1}, {0.95f, 1}, {1.0f, 1}};
  const auto bins = reliability_bins(p, 10);
  ASSERT_EQ(bins.size(), 10u);
  EXPECT_EQ(bins[1].count, 4);
  EXPECT_NEAR(bins[1].fraction_malignant, 0.25, 1e-12);
  EXPECT_EQ(bins[9].count, 3);
  EXPECT_NEAR(bins[9].mean_predicted, (0.95 + 0.95 + 1.0) / 3, 1e-6);
  const double want = (4 * 0.1 + 3 * (1 - (0.95 + 0.95 + 1.0) / 3)) / 7;
  EXPECT_NEAR(expected_calibration_error(bins), want, 1e-6);
  const auto j = calibration_json(p);
  EXPECT_EQ(j["reliability"].size(), 2u);  // the empty bins are not points
  EXPECT_NEAR(j["ece"].get<double>(), want, 1e-6);
  // Perfectly calibrated: no gap.
  EXPECT_EQ(expected_calibration_error(reliability_bins({{0.5f, 1}, {0.5f, 0}}, 10)), 0.0);
}

}  // namespace
}  // namespace histocnn
