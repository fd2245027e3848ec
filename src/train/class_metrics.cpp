#include "train/class_metrics.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"
#include "train/metrics.h"

namespace histocnn {
namespace {

// Mean of the finite values; NaN when there are none.
double finite_mean(const std::vector<double>& v) {
  double sum = 0;
  int n = 0;
  for (double x : v)
    if (std::isfinite(x)) sum += x, ++n;
  return n ? sum / n : std::nan("");
}

}  // namespace

int ClassPrediction::predicted() const {
  return int(std::max_element(probs.begin(), probs.end()) - probs.begin());
}

double quadratic_weighted_kappa(const std::vector<std::vector<int>>& confusion) {
  const size_t k = confusion.size();
  std::vector<double> rows(k, 0), cols(k, 0);
  double n = 0;
  for (size_t i = 0; i < k; ++i)
    for (size_t j = 0; j < k; ++j) {
      rows[i] += confusion[i][j];
      cols[j] += confusion[i][j];
      n += confusion[i][j];
    }
  if (n == 0 || k < 2) return std::nan("");
  double observed = 0, expected = 0;
  for (size_t i = 0; i < k; ++i)
    for (size_t j = 0; j < k; ++j) {
      const double d = double(i) - double(j), w = d * d / (double(k - 1) * double(k - 1));
      observed += w * confusion[i][j];
      expected += w * rows[i] * cols[j] / n;
    }
  return expected == 0 ? std::nan("") : 1 - observed / expected;
}

ClassMetrics class_metrics_of_confusion(std::vector<std::vector<int>> confusion) {
  const size_t k = confusion.size();
  require(k >= 2, "class metrics need at least two classes");
  ClassMetrics m;
  m.classes = int(k);
  m.confusion = std::move(confusion);
  m.support.assign(k, 0);
  std::vector<int> predicted(k, 0);
  int right = 0;
  for (size_t i = 0; i < k; ++i)
    for (size_t j = 0; j < k; ++j) {
      m.support[i] += m.confusion[i][j];
      predicted[j] += m.confusion[i][j];
      if (i == j) right += m.confusion[i][j];
    }
  for (size_t c = 0; c < k; ++c) {
    const double tp = m.confusion[c][c];
    const double p = predicted[c] ? tp / predicted[c] : std::nan("");
    const double r = m.support[c] ? tp / m.support[c] : std::nan("");
    m.precision.push_back(p);
    m.recall.push_back(r);
    // F1 of a class with support or predictions: 0 when it was never right.
    m.f1.push_back(predicted[c] + m.support[c] == 0 ? std::nan("")
                                                    : 2 * tp / (predicted[c] + m.support[c]));
  }
  m.count = std::accumulate(m.support.begin(), m.support.end(), 0);
  m.auc.assign(k, std::nan(""));
  m.accuracy = m.count ? double(right) / m.count : std::nan("");
  m.balanced_accuracy = finite_mean(m.recall);
  m.macro_f1 = finite_mean(m.f1);
  m.quadratic_kappa = quadratic_weighted_kappa(m.confusion);
  return m;
}

ClassMetrics compute_class_metrics(const std::vector<ClassPrediction>& predictions, int classes) {
  require(classes >= 2, "class metrics need at least two classes");
  const size_t k = size_t(classes);
  std::vector<std::vector<int>> confusion(k, std::vector<int>(k, 0));
  for (const auto& p : predictions) {
    require(p.probs.size() == k && p.label >= 0 && p.label < classes,
            "class metrics: a prediction of the wrong size or label");
    for (double x : p.probs)
      if (!std::isfinite(x)) throw NonFiniteScores("class probabilities are not finite numbers");
    confusion[size_t(p.label)][size_t(p.predicted())]++;
  }
  ClassMetrics m = class_metrics_of_confusion(std::move(confusion));
  for (size_t c = 0; c < k; ++c) {
    std::vector<Prediction> one_vs_rest;
    for (const auto& p : predictions)
      one_vs_rest.push_back({float(p.probs[c]), p.label == int(c) ? 1 : 0});
    m.auc[c] = compute_metrics(one_vs_rest).auc;
  }
  return m;
}

std::vector<ClassPrediction> aggregate_classes(const std::vector<ClassPrediction>& predictions,
                                               const std::vector<std::string>& group_of) {
  require(predictions.size() == group_of.size(), "aggregate_classes: one group per prediction");
  std::map<std::string, size_t> index;
  std::vector<ClassPrediction> out;
  std::vector<std::vector<int>> votes;
  std::vector<int> members;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const auto& p = predictions[i];
    auto [it, added] = index.emplace(group_of[i], out.size());
    if (added) {
      out.push_back({std::vector<double>(p.probs.size(), 0.0), 0});
      votes.emplace_back(p.probs.size(), 0);
      members.push_back(0);
    }
    const size_t g = it->second;
    for (size_t c = 0; c < p.probs.size(); ++c) out[g].probs[c] += p.probs[c];
    votes[g][size_t(p.label)]++;
    members[g]++;
  }
  for (size_t g = 0; g < out.size(); ++g) {
    for (double& x : out[g].probs) x /= members[g];
    out[g].label = int(std::max_element(votes[g].begin(), votes[g].end()) - votes[g].begin());
  }
  return out;
}

std::vector<Prediction> confidence_predictions(const std::vector<ClassPrediction>& predictions) {
  std::vector<Prediction> out;
  for (const auto& p : predictions)
    out.push_back({float(p.probs[size_t(p.predicted())]), p.predicted() == p.label ? 1 : 0});
  return out;
}

nlohmann::json ClassMetrics::to_json(const std::vector<std::string>& names) const {
  const auto number = [](double x) {
    return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json();
  };
  nlohmann::json per_class = nlohmann::json::object();
  for (size_t c = 0; c < size_t(classes); ++c)
    per_class[c < names.size() ? names[c] : std::to_string(c)] = {
        {"precision", number(precision[c])},
        {"recall", number(recall[c])},
        {"f1", number(f1[c])},
        {"auc", number(auc[c])},
        {"support", support[c]}};
  return {{"count", count},
          {"accuracy", number(accuracy)},
          {"balanced_accuracy", number(balanced_accuracy)},
          {"macro_f1", number(macro_f1)},
          {"quadratic_kappa", number(quadratic_kappa)},
          {"confusion", confusion},
          {"per_class", per_class}};
}

}  // namespace histocnn
