#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "core/error.h"

namespace histocnn {

Metrics confusion_metrics(int tn, int fp, int fn, int tp) {
  Metrics m;
  m.tn = tn, m.fp = fp, m.fn = fn, m.tp = tp;
  m.count = tn + fp + fn + tp;
  if (m.count == 0) return m;
  m.accuracy = double(tp + tn) / m.count;
  const int positives = tp + fn, negatives = tn + fp;
  const double tpr = positives ? double(tp) / positives : 0.0;
  const double tnr = negatives ? double(tn) / negatives : 0.0;
  m.balanced_accuracy = positives && negatives ? 0.5 * (tpr + tnr) : (positives ? tpr : tnr);
  m.auc = std::numeric_limits<double>::quiet_NaN();  // the caller ranks when both classes exist
  return m;
}

Metrics compute_metrics(const std::vector<Prediction>& predictions, double threshold) {
  Metrics m;
  m.count = int(predictions.size());
  if (predictions.empty()) return m;
  // A NaN score has no rank and no class: refuse it here (sorting NaNs is
  // undefined and the tie loop below would never end).
  const auto bad = std::count_if(predictions.begin(), predictions.end(),
                                 [](const Prediction& p) { return !std::isfinite(p.p_malignant); });
  if (bad > 0)
    throw NonFiniteScores(std::to_string(bad) + " of " + std::to_string(predictions.size()) +
                          " predicted probabilities are not numbers (NaN or infinite): the "
                          "network's outputs overflow (its weights are not finite or too large)");
  int tn = 0, fp = 0, fn = 0, tp = 0;
  for (const auto& p : predictions) {
    const bool predicted = double(p.p_malignant) >= threshold;
    if (p.label == 1)
      predicted ? ++tp : ++fn;
    else
      predicted ? ++fp : ++tn;
  }
  m = confusion_metrics(tn, fp, fn, tp);
  const int positives = tp + fn, negatives = tn + fp;
  if (!positives || !negatives) return m;
  // AUC = Mann-Whitney U / (P*N), ties counted half, via average ranks.
  std::vector<std::pair<float, int>> sorted;
  for (const auto& p : predictions) sorted.push_back({p.p_malignant, p.label});
  std::sort(sorted.begin(), sorted.end());
  double rank_sum = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j < sorted.size() && sorted[j].first == sorted[i].first) ++j;
    const double average_rank = 0.5 * double(i + 1 + j);
    for (size_t k = i; k < j; ++k)
      if (sorted[k].second == 1) rank_sum += average_rank;
    i = j;
  }
  m.auc = (rank_sum - double(positives) * (positives + 1) / 2.0) / (double(positives) * negatives);
  return m;
}

std::vector<std::pair<double, double>> roc_curve(const std::vector<Prediction>& predictions) {
  int positives = 0;
  for (const auto& p : predictions) positives += p.label == 1;
  const int negatives = int(predictions.size()) - positives;
  if (!positives || !negatives) return {};
  std::vector<Prediction> sorted = predictions;
  std::sort(sorted.begin(), sorted.end(),
            [](const Prediction& a, const Prediction& b) { return a.p_malignant > b.p_malignant; });
  std::vector<std::pair<double, double>> curve = {{0.0, 0.0}};
  int tp = 0, fp = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    for (; j < sorted.size() && sorted[j].p_malignant == sorted[i].p_malignant; ++j)
      (sorted[j].label == 1 ? tp : fp)++;
    curve.push_back({double(fp) / negatives, double(tp) / positives});
    i = j;
  }
  return curve;
}

std::vector<Prediction> aggregate(const std::vector<Prediction>& predictions,
                                  const std::vector<std::string>& group_of) {
  require(predictions.size() == group_of.size(), "aggregate: size mismatch");
  std::map<std::string, std::pair<double, int>> sums;
  std::map<std::string, int> malignant;  // a group's label: the majority of its members'
  for (size_t i = 0; i < predictions.size(); ++i) {
    auto& s = sums[group_of[i]];
    s.first += predictions[i].p_malignant;
    s.second += 1;
    malignant[group_of[i]] += predictions[i].label;
  }
  std::vector<Prediction> out;
  for (const auto& [group, s] : sums)
    out.push_back({float(s.first / s.second), 2 * malignant[group] > s.second ? 1 : 0});
  return out;
}

nlohmann::json Metrics::to_json() const {
  nlohmann::json j = {{"count", count},
                      {"accuracy", accuracy},
                      {"balanced_accuracy", balanced_accuracy},
                      {"confusion", {{"tn", tn}, {"fp", fp}, {"fn", fn}, {"tp", tp}}}};
  j["auc"] = std::isnan(auc) ? nlohmann::json(nullptr) : nlohmann::json(auc);
  return j;
}

}  // namespace histocnn
