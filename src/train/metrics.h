// Classification metrics for benign (0) / malignant (1), at three levels:
// per crop, per image (mean P(malignant) over its crops) and per patient.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace histocnn {

struct Prediction {
  float p_malignant;
  int label;
};

struct Metrics {
  int count = 0;
  double accuracy = 0, balanced_accuracy = 0, auc = 0;  // auc is NaN with one class only
  int tn = 0, fp = 0, fn = 0, tp = 0;                   // confusion at the threshold
  nlohmann::json to_json() const;
};

// Scores that are not numbers (NaN or infinite): the network's outputs
// overflowed. Never ranked or counted: a run that produces them has diverged.
class NonFiniteScores : public Error {
 public:
  using Error::Error;
};

// Accuracy and balanced accuracy of a confusion at the threshold (count:
// their sum); auc NaN — ranking needs the scores (compute_metrics).
Metrics confusion_metrics(int tn, int fp, int fn, int tp);
// A prediction is malignant when p_malignant >= threshold. Throws
// NonFiniteScores when any p_malignant is not finite.
Metrics compute_metrics(const std::vector<Prediction>& predictions, double threshold = 0.5);
// The ROC curve: (false positive rate, true positive rate) points from (0,0)
// to (1,1), one per distinct score (tied scores move diagonally), so its
// trapezoid area equals Metrics::auc. Empty with one class only.
std::vector<std::pair<double, double>> roc_curve(const std::vector<Prediction>& predictions);

// Mean P(malignant) per group (image or patient); groups keyed by string.
std::vector<Prediction> aggregate(const std::vector<Prediction>& predictions,
                                  const std::vector<std::string>& group_of);

}  // namespace histocnn
