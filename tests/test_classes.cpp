// More than two classes: the label schemes (which column, which classes, in
// which order, which are malignant), class-stratified folds, crops per
// class, the K-class metrics against hand-computed answers, and the
// grouped temperature scaling of K classes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/grade_csv.h"
#include "data/labels.h"
#include "test_util.h"
#include "train/class_metrics.h"
#include "train/temperature.h"

namespace histocnn {
namespace {

// The GlaS release's columns and spellings (its "differentated" included).
const char* kGradeCsv =
    "name,patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015),site\n"
    "train_1,2, malignant, moderately differentiated,colon\n"
    "train_2,2, malignant, moderately-to-poorly differentated,colon\n"
    "train_3,5, benign, healthy,rectum\n"
    "train_4,6, benign,  Adenomatous ,colon\n"
    "train_5,7, malignant, poorly differentiated,rectum\n";

using testing::error_of;

TEST(LabelSchemes, Grade5ReadsTheReleaseSpellingsInOrdinalOrder) {
  const auto rows = parse_grade_csv(kGradeCsv, "Grade.csv");
  const LabelScheme s = resolve_label_scheme("grade5", rows, "Grade.csv");
  ASSERT_EQ(s.count(), 5);
  EXPECT_EQ(s.classes.front(), "healthy");
  EXPECT_EQ(s.classes.back(), "poorly differentiated");
  EXPECT_EQ(class_labels(s, rows, "Grade.csv"), (std::vector<int>{2, 3, 0, 1, 4}));
  EXPECT_EQ(s.malignant, (std::vector<bool>{false, false, true, true, true}));
  const LabelScheme glas = resolve_label_scheme("glas", rows, "Grade.csv");
  EXPECT_EQ(class_labels(glas, rows, "Grade.csv"), (std::vector<int>{1, 1, 0, 0, 1}));
}

TEST(LabelSchemes, AColumnGivesSortedOrListedClassesAndItsBinaryView) {
  auto rows = parse_grade_csv(
      "name,patient ID,grade (GlaS),stage\na,1,benign,B\nb,2,malignant,C\nc,3,benign,A\n", "g");
  const LabelScheme sorted = resolve_label_scheme("stage", rows, "g");
  EXPECT_EQ(sorted.classes, (std::vector<std::string>{"A", "B", "C"}));
  EXPECT_EQ(sorted.malignant, (std::vector<bool>{false, false, true}));  // from the data
  const LabelScheme listed = resolve_label_scheme("stage=C,B,A", rows, "g");
  EXPECT_EQ(class_labels(listed, rows, "g"), (std::vector<int>{1, 0, 2}));
  // A value outside the listed classes names the image and the column.
  const std::string missing = error_of([&] { resolve_label_scheme("stage=A,B", rows, "g"); });
  EXPECT_NE(missing.find("image b"), std::string::npos) << missing;
  EXPECT_NE(missing.find("'C' in column 'stage'"), std::string::npos) << missing;
  // A class holding benign and malignant images has no binary view: refused.
  rows = parse_grade_csv(
      "name,patient ID,grade (GlaS),stage\na,1,benign,X\nb,2,malignant,X\nc,3,benign,Y\n", "g");
  const std::string mixed = error_of([&] { resolve_label_scheme("stage", rows, "g"); });
  EXPECT_NE(mixed.find("both benign and malignant"), std::string::npos) << mixed;
  const std::string absent = error_of([&] { resolve_label_scheme("nope", rows, "g"); });
  EXPECT_NE(absent.find("has no column 'nope'"), std::string::npos) << absent;
  const std::string one = error_of([&] { resolve_label_scheme("stage=X", rows, "g"); });
  EXPECT_NE(one.find("needs 2.."), std::string::npos) << one;
  for (const std::string& e : {missing, mixed, absent, one})
    EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
}

TEST(LabelSchemes, FoldsStratifyEveryClassAndCropsSplitPerClass) {
  // 20 patients, one image each, over 5 classes: every fold of 4 gets one
  // patient of each class.
  std::vector<SlideImage> images;
  for (int i = 0; i < 20; ++i)
    images.push_back({"img" + std::to_string(i), "", "p" + std::to_string(i), i % 5});
  const auto folds = patient_folds(images, 4, 3);
  for (int f = 0; f < 4; ++f) {
    std::multiset<int> classes;
    for (size_t i = 0; i < folds.size(); ++i)
      if (folds[i] == f) classes.insert(images[i].label);
    EXPECT_EQ(classes, (std::multiset<int>{0, 1, 2, 3, 4})) << "fold " << f;
  }
  CropOptions crops;
  EXPECT_EQ(crops.crops_by_class(2), (std::vector<int>{941, 910}));  // the paper's
  EXPECT_EQ(crops.crops_by_class(5), std::vector<int>(5, 371));      // 1851 / 5, rounded up
  crops.crops_per_class = 100;
  EXPECT_EQ(crops.crops_by_class(3), std::vector<int>(3, 100));
  crops.crops_per_class = 0;
  crops.benign_crops = 5;
  EXPECT_NE(error_of([&] { crops.crops_by_class(5); }).find("--crops-per-class"),
            std::string::npos);
}

TEST(ClassMetrics, HandComputedConfusionF1AndQuadraticKappa) {
  // True 0,1,2,2; predicted 0,2,1,2.
  const auto one_hot = [](int c) {
    std::vector<double> p(3, 0.1);
    p[size_t(c)] = 0.8;
    return p;
  };
  const std::vector<ClassPrediction> predictions = {
      {one_hot(0), 0}, {one_hot(2), 1}, {one_hot(1), 2}, {one_hot(2), 2}};
  const ClassMetrics m = compute_class_metrics(predictions, 3);
  EXPECT_EQ(m.confusion, (std::vector<std::vector<int>>{{1, 0, 0}, {0, 0, 1}, {0, 1, 1}}));
  EXPECT_DOUBLE_EQ(m.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(m.precision[2], 0.5);
  EXPECT_DOUBLE_EQ(m.recall[1], 0.0);
  EXPECT_DOUBLE_EQ(m.f1[2], 0.5);
  EXPECT_DOUBLE_EQ(m.macro_f1, 0.5);
  EXPECT_DOUBLE_EQ(m.balanced_accuracy, 0.5);
  // One-vs-rest AUC: class 0's 0.8 ranks above the other three's 0.1.
  EXPECT_DOUBLE_EQ(m.auc[0], 1.0);
  // Class 1 (one image, P 0.1) against the rest (0.1, 0.8, 0.1): ties half.
  EXPECT_DOUBLE_EQ(m.auc[1], (0.5 + 0 + 0.5) / 3);
  // Observed weighted disagreement 0.5 against 1.375 expected by chance.
  EXPECT_NEAR(m.quadratic_kappa, 7.0 / 11.0, 1e-12);
  // Perfect agreement is 1; a constant prediction agrees only by chance: 0.
  EXPECT_DOUBLE_EQ(quadratic_weighted_kappa({{2, 0, 0}, {0, 3, 0}, {0, 0, 1}}), 1.0);
  EXPECT_NEAR(quadratic_weighted_kappa({{0, 2, 0}, {0, 3, 0}, {0, 1, 0}}), 0.0, 1e-12);
  // Kappa weighs distance: mistaking grade 1 for 3 costs more than for 2.
  EXPECT_LT(quadratic_weighted_kappa({{1, 0, 1}, {0, 2, 0}, {0, 0, 2}}),
            quadratic_weighted_kappa({{1, 1, 0}, {0, 2, 0}, {0, 0, 2}}));
  // A class never predicted has no precision; the macro mean skips it.
  EXPECT_TRUE(
      std::isnan(compute_class_metrics({{one_hot(0), 1}, {one_hot(0), 0}}, 3).precision[1]));
}

TEST(ClassMetrics, ImagesAverageTheirCropsAndTakeTheirMajorityClass) {
  const std::vector<ClassPrediction> crops = {
      {{0.6, 0.3, 0.1}, 2}, {{0.0, 0.3, 0.7}, 2}, {{0.1, 0.8, 0.1}, 1}};
  const auto images = aggregate_classes(crops, {"a", "a", "b"});
  ASSERT_EQ(images.size(), 2u);
  EXPECT_NEAR(images[0].probs[0], 0.3, 1e-12);
  EXPECT_NEAR(images[0].probs[2], 0.4, 1e-12);
  EXPECT_EQ(images[0].predicted(), 2);
  EXPECT_EQ(images[0].label, 2);
  // Confidence calibration: each top probability against whether it was right.
  const auto confidence = confidence_predictions(crops);
  EXPECT_FLOAT_EQ(confidence[0].p_malignant, 0.6f);
  EXPECT_EQ(confidence[0].label, 0);
  EXPECT_EQ(confidence[1].label, 1);
}

// A sample from the two-level truth the grouped fit models: the side by
// sigmoid(log-odds / between), then the class within it by
// softmax(log p / within) over the side's classes.
int draw_grouped(const std::vector<double>& logs, const std::vector<bool>& malignant,
                 double between, double within, Rng& rng) {
  double mass[2] = {0, 0};
  for (size_t k = 0; k < logs.size(); ++k) mass[malignant[k] ? 1 : 0] += std::exp(logs[k]);
  const double z = std::log(mass[1]) - std::log(mass[0]);
  const bool side = rng.uniform() < 1 / (1 + std::exp(-z / between));
  double sum = 0;
  for (size_t k = 0; k < logs.size(); ++k)
    if (malignant[k] == side) sum += std::exp(logs[k] / within);
  double u = rng.uniform() * sum;
  int last = 0;
  for (size_t k = 0; k < logs.size(); ++k) {
    if (malignant[k] != side) continue;
    last = int(k);
    if ((u -= std::exp(logs[k] / within)) <= 0) break;
  }
  return last;
}

TEST(ClassTemperature, GroupedFitRecoversBothTemperaturesLabelsWereDrawnAt) {
  const std::vector<bool> malignant = {false, false, true, true, true};
  Rng rng(41);
  for (const auto& [between, within] : {std::pair{0.7, 2.5}, std::pair{1.8, 0.6}}) {
    std::vector<std::vector<double>> rows;
    std::vector<int> labels;
    for (int i = 0; i < 8000; ++i) {
      std::vector<double> z(5);
      for (double& x : z) x = 2.5 * rng.normal();
      double lse = 0;
      for (double x : z) lse += std::exp(x);
      for (double& x : z) x -= std::log(lse);  // the network says softmax(z)
      labels.push_back(draw_grouped(z, malignant, between, within, rng));
      rows.push_back(z);
    }
    const GroupedTemperatureFit fit = fit_grouped_temperature(rows, labels, malignant);
    EXPECT_NEAR(fit.between.temperature, between, 0.1 * between) << fit.to_json().dump();
    EXPECT_NEAR(fit.within.temperature, within, 0.1 * within) << fit.to_json().dump();
    EXPECT_LT(fit.within.nll_after, fit.within.nll_before);
    EXPECT_EQ(fit.to_json()["method"], "grouped");
    EXPECT_EQ(fit.to_json()["temperature"], fit.between.temperature);
  }
}

// Malignant grades 1 and 2 confused, benign/malignant certain: the grades
// soften, the binary view stays exactly as sure as it was.
TEST(ClassTemperature, GroupedFitSoftensConfusedGradesWithoutBlurringTheBinaryView) {
  const std::vector<bool> malignant = {false, true, true};
  std::vector<std::vector<double>> rows;
  std::vector<int> labels;
  for (int i = 0; i < 200; ++i) {
    const double lse = 8 + std::log(std::exp(-18.0) + std::exp(-3.0) + 1.0);
    rows.push_back({-10 - lse, 5 - lse, 8 - lse});
    labels.push_back(1 + i % 2);
  }
  const GroupedTemperatureFit fit = fit_grouped_temperature(rows, labels, malignant);
  EXPECT_EQ(fit.between.temperature, 1) << fit.to_json().dump();  // separated perfectly
  EXPECT_GT(fit.within.temperature, 5) << fit.to_json().dump();
  EXPECT_LT(fit.within.ece_after, fit.within.ece_before);
  std::vector<double> p;
  for (double l : rows[0]) p.push_back(std::exp(l));
  const std::vector<double> q = tempered_probabilities(p, fit.tempering(), malignant);
  EXPECT_NEAR(q[1] + q[2], p[1] + p[2], 1e-12);
  EXPECT_NEAR(q[0], p[0], 1e-15);
  EXPECT_NEAR(q[1], q[2], 0.2);
  // Every class on one side: one temperature for all of them, nothing between.
  const GroupedTemperatureFit one_side = fit_grouped_temperature(rows, labels, {true, true, true});
  EXPECT_EQ(one_side.between.temperature, 1);
  EXPECT_EQ(one_side.between.count, 0);
  EXPECT_GT(one_side.within.temperature, 5) << one_side.to_json().dump();
  EXPECT_EQ(tempered_probabilities(p, one_side.tempering(), {true, true, true}),
            tempered_probabilities(p, one_side.within.temperature));
  // Labels and flags must match the rows.
  EXPECT_THROW(fit_grouped_temperature(rows, labels, {false, true}), Error);
  EXPECT_THROW(fit_grouped_temperature(rows, {0}, malignant), Error);
}

TEST(ClassTemperature, TemperingKeepsWhatItShouldAndSumsToOne) {
  const std::vector<double> p = {0.1, 0.6, 0.05, 0.25};
  const std::vector<bool> malignant = {false, false, true, true};
  const auto total = [](const std::vector<double>& q) {
    double sum = 0;
    for (double x : q) sum += x;
    return sum;
  };
  // Within alone: each side's mass is kept, its classes move closer.
  const auto within = tempered_probabilities(p, Tempering{1, 3, true}, malignant);
  EXPECT_NEAR(within[2] + within[3], 0.30, 1e-12);
  EXPECT_NEAR(within[1] / within[0], std::pow(6.0, 1 / 3.0), 1e-9);
  EXPECT_NEAR(total(within), 1.0, 1e-12);
  // Between alone: the binary view is tempered, each side's proportions kept.
  const auto between = tempered_probabilities(p, Tempering{2, 1, true}, malignant);
  EXPECT_NEAR(between[2] + between[3], tempered_p_malignant(0.7, 0.3, 2), 1e-12);
  EXPECT_NEAR(between[3] / between[2], 5.0, 1e-9);
  EXPECT_NEAR(total(between), 1.0, 1e-12);
  // Not grouped (older grade models): softmax(log p / T) of every class,
  // which keeps the order.
  const auto single = tempered_probabilities(p, Tempering{3, 1, false}, malignant);
  EXPECT_EQ(single, tempered_probabilities(p, 3.0));
  EXPECT_EQ(std::max_element(single.begin(), single.end()) - single.begin(), 1);
  EXPECT_LT(single[1], p[1]);
  EXPECT_NEAR(total(single), 1.0, 1e-12);
  // Two classes: the exact two-class form, grouped or not.
  EXPECT_NEAR(tempered_probabilities({0.2, 0.8}, Tempering{2, 5, true}, {false, true})[1],
              tempered_p_malignant(0.2, 0.8, 2.0), 1e-15);
  EXPECT_EQ(tempered_probabilities(p, Tempering{}, malignant), p);
  EXPECT_TRUE(
      std::isnan(tempered_probabilities({0.5, NAN, 0.5, 0}, Tempering{2, 2, true}, malignant)[0]));
  EXPECT_THROW(tempered_probabilities(p, Tempering{1, 0, true}, malignant), Error);
  EXPECT_THROW(tempered_probabilities(p, Tempering{2, 1, true}, {false, true}), Error);
}

}  // namespace
}  // namespace histocnn
