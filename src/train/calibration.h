// How well P(malignant) means what it says: predictions binned by their
// probability (equal-width bins over [0, 1]), each bin's mean prediction
// against the fraction of it that is malignant — the reliability diagram —
// and the expected calibration error, the bins' gaps weighted by their share
// of the predictions (Guo et al. 2017, for the positive class).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "train/metrics.h"

namespace histocnn {

struct ReliabilityBin {
  double low = 0, high = 0;   // the bin's probability range
  int count = 0;              // predictions in it
  double mean_predicted = 0;  // their mean P(malignant)
  double fraction_malignant = 0;
};

// Requires: bins >= 1; predictions finite (compute_metrics checks).
std::vector<ReliabilityBin> reliability_bins(const std::vector<Prediction>& predictions,
                                             int bins = 10);
// Sum over bins of count / N * |fraction_malignant - mean_predicted|; 0 for none.
double expected_calibration_error(const std::vector<ReliabilityBin>& bins);

// {"bins": 10, "ece": x, "reliability": [[mean_predicted, fraction, count], ...]}
nlohmann::json calibration_json(const std::vector<Prediction>& predictions, int bins = 10);

}  // namespace histocnn
