#include "train/calibration.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace histocnn {

std::vector<ReliabilityBin> reliability_bins(const std::vector<Prediction>& predictions, int bins) {
  require(bins >= 1, "reliability_bins: needs at least one bin");
  std::vector<ReliabilityBin> out(static_cast<size_t>(bins));
  for (int b = 0; b < bins; ++b) {
    out[size_t(b)].low = double(b) / bins;
    out[size_t(b)].high = double(b + 1) / bins;
  }
  for (const Prediction& p : predictions) {
    // P = 1 falls in the last bin.
    const int b = std::clamp(int(std::floor(double(p.p_malignant) * bins)), 0, bins - 1);
    ReliabilityBin& bin = out[size_t(b)];
    bin.count++;
    bin.mean_predicted += p.p_malignant;
    bin.fraction_malignant += p.label;
  }
  for (ReliabilityBin& bin : out)
    if (bin.count) bin.mean_predicted /= bin.count, bin.fraction_malignant /= bin.count;
  return out;
}

double expected_calibration_error(const std::vector<ReliabilityBin>& bins) {
  double total = 0, gap = 0;
  for (const ReliabilityBin& bin : bins) {
    total += bin.count;
    gap += bin.count * std::fabs(bin.fraction_malignant - bin.mean_predicted);
  }
  return total > 0 ? gap / total : 0.0;
}

nlohmann::json calibration_json(const std::vector<Prediction>& predictions, int bins) {
  const std::vector<ReliabilityBin> reliability = reliability_bins(predictions, bins);
  nlohmann::json points = nlohmann::json::array();
  for (const ReliabilityBin& bin : reliability)
    if (bin.count) points.push_back({bin.mean_predicted, bin.fraction_malignant, bin.count});
  return {
      {"bins", bins}, {"ece", expected_calibration_error(reliability)}, {"reliability", points}};
}

}  // namespace histocnn
