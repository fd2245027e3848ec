// Metrics for K classes (a grade model; also computed for two): the K x K
// confusion matrix, per-class precision, recall and F1, their macro mean,
// accuracy, balanced accuracy (mean recall) and the quadratically weighted
// Cohen's kappa — the agreement measure for ordered grades, where calling a
// grade 1 a grade 5 costs 16 times calling it a grade 2 (Cohen 1968).
// The prediction is the class of highest probability (ties to the lower).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/metrics.h"

namespace histocnn {

struct ClassPrediction {
  std::vector<double> probs;  // one per class, summing to 1
  int label = 0;              // the true class
  int predicted() const;      // argmax of probs
};

struct ClassMetrics {
  int classes = 0, count = 0;
  std::vector<std::vector<int>> confusion;  // [true class][predicted class]
  std::vector<int> support;                 // predictions per true class
  // Per class; NaN where undefined (precision of a class never predicted,
  // recall of a class absent). Macro means skip the NaNs.
  std::vector<double> precision, recall, f1;
  // One-vs-rest ROC AUC of each class's probability (NaN where the class is
  // absent or alone).
  std::vector<double> auc;
  double accuracy = 0, balanced_accuracy = 0, macro_f1 = 0;
  // 1 = perfect agreement, 0 = chance; NaN when the labels are all one class
  // and the predictions too (no disagreement possible).
  double quadratic_kappa = 0;
  // {"accuracy", "balanced_accuracy", "macro_f1", "quadratic_kappa", "count",
  //  "confusion": [[..]], "per_class": {name: {precision, recall, f1, auc, support}}}
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};

// Requires: every probs of `classes` entries, labels in [0, classes).
ClassMetrics compute_class_metrics(const std::vector<ClassPrediction>& predictions, int classes);
// Everything a confusion matrix [true][predicted] (K >= 2) determines: all
// but the AUCs, which need the probabilities (left NaN).
ClassMetrics class_metrics_of_confusion(std::vector<std::vector<int>> confusion);

// Quadratically weighted kappa of a confusion matrix [true][predicted].
double quadratic_weighted_kappa(const std::vector<std::vector<int>>& confusion);

// The mean class probabilities per group (image or patient), groups in order
// of first appearance; a group's label is the most frequent of its members'
// (ties to the lower class).
std::vector<ClassPrediction> aggregate_classes(const std::vector<ClassPrediction>& predictions,
                                               const std::vector<std::string>& group_of);

// Confidence calibration for K classes: each prediction as (its top
// probability, whether it was right), so calibration.h's bins and ECE read
// "fraction correct" against "mean confidence" (Guo et al. 2017).
std::vector<Prediction> confidence_predictions(const std::vector<ClassPrediction>& predictions);

}  // namespace histocnn
