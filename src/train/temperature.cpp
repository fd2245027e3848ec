#include "train/temperature.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/error.h"
#include "train/calibration.h"

namespace histocnn {
namespace {

constexpr double kLogOddsLimit = 200;

// log(1 + e^x) without overflow.
double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// Expected calibration error (10 bins) of sigmoid(log_odds / T).
double ece_at(const std::vector<double>& log_odds, const std::vector<int>& labels, double t) {
  std::vector<Prediction> p;
  for (size_t i = 0; i < log_odds.size(); ++i)
    p.push_back({float(1 / (1 + std::exp(-log_odds[i] / t))), labels[i]});
  return expected_calibration_error(reliability_bins(p, 10));
}

// log sum exp of row / t.
double log_sum_exp(const std::vector<double>& row, double t) {
  double top = -INFINITY;
  for (double x : row) top = std::max(top, x / t);
  double sum = 0;
  for (double x : row) sum += std::exp(x / t - top);
  return top + std::log(sum);
}

double softmax_nll(const std::vector<std::vector<double>>& rows, const std::vector<int>& labels,
                   double t) {
  if (rows.empty()) return 0;
  double sum = 0;
  for (size_t i = 0; i < rows.size(); ++i)
    sum += log_sum_exp(rows[i], t) - rows[i][size_t(labels[i])] / t;
  return sum / double(rows.size());
}

// Confidence ECE (top probability against fraction right, 10 bins) of rows
// of class probabilities after `t`.
double confidence_ece_of(const std::vector<std::vector<double>>& probs,
                         const std::vector<int>& labels, const Tempering& t,
                         const std::vector<bool>& malignant) {
  std::vector<Prediction> p;
  for (size_t i = 0; i < probs.size(); ++i) {
    const std::vector<double> row = tempered_probabilities(probs[i], t, malignant);
    const auto top = std::max_element(row.begin(), row.end());
    p.push_back({float(*top), int(top - row.begin()) == labels[i] ? 1 : 0});
  }
  return expected_calibration_error(reliability_bins(p, 10));
}

bool has_both_sides(const std::vector<bool>& malignant) {
  return std::count(malignant.begin(), malignant.end(), true) > 0 &&
         std::count(malignant.begin(), malignant.end(), false) > 0;
}

// log sum over the classes of one side (malignant or not) of exp(log p / t).
double side_log_sum_exp(const std::vector<double>& logs, const std::vector<bool>& malignant,
                        bool side, double t) {
  std::vector<double> own;
  for (size_t k = 0; k < logs.size(); ++k)
    if (malignant[k] == side) own.push_back(logs[k]);
  return log_sum_exp(own, t);
}

// log P(malignant) - log P(benign) of a row of log class probabilities, each
// side summed from its own classes, clamped as log_odds is.
double sides_log_odds(const std::vector<double>& logs, const std::vector<bool>& malignant) {
  return std::clamp(
      side_log_sum_exp(logs, malignant, true, 1) - side_log_sum_exp(logs, malignant, false, 1),
      -kLogOddsLimit, kLogOddsLimit);
}

// The golden-section search over log T and the guards, given the NLL and
// the calibration error of `count` predictions at any T.
TemperatureFit search_temperature(int count, const std::function<double(double)>& nll_of,
                                  const std::function<double(double)>& ece_of) {
  TemperatureFit fit;
  fit.count = count;
  fit.nll_before = fit.nll_after = count ? nll_of(1.0) : 0.0;
  if (count == 0) return fit;
  fit.ece_before = fit.ece_after = ece_of(1.0);
  const auto nll_at = [&](double log_t) { return nll_of(std::exp(log_t)); };
  const double ratio = (std::sqrt(5.0) - 1) / 2;
  double lo = std::log(kMinTemperature), hi = std::log(kMaxTemperature);
  double a = hi - ratio * (hi - lo), b = lo + ratio * (hi - lo);
  double fa = nll_at(a), fb = nll_at(b);
  for (int i = 0; i < 80 && hi - lo > 1e-7; ++i) {
    if (fa <= fb) {
      hi = b, b = a, fb = fa;
      a = hi - ratio * (hi - lo), fa = nll_at(a);
    } else {
      lo = a, a = b, fa = fb;
      b = lo + ratio * (hi - lo), fb = nll_at(b);
    }
  }
  const double t = std::exp((lo + hi) / 2);
  fit.at_bound = t <= kMinTemperature * 1.001 || temperature_capped(t);
  // Sharpening without end means the validation crops are separated
  // perfectly: that says nothing of how sure the model should be elsewhere.
  if (t <= kMinTemperature * 1.001) return fit;
  const double nll = nll_of(t);
  const double ece = ece_of(t);
  // Never worse than leaving the model alone, by either measure: on a few
  // dozen patients the likelihood is ruled by a handful of confident errors,
  // and softening every right answer to pay for them can raise the
  // calibration error (measured on GlaS: docs/results/glas-calibration.md).
  if (nll < fit.nll_before && ece <= fit.ece_before)
    fit.temperature = t, fit.nll_after = nll, fit.ece_after = ece;
  else
    fit.declined = ece > fit.ece_before ? "raised the calibration error" : "no better likelihood";
  return fit;
}

}  // namespace

double clamped_log(double p) {
  if (std::isnan(p)) return p;
  return p > 0 ? std::max(std::log(p), -kLogOddsLimit) : -kLogOddsLimit;
}

std::vector<double> tempered_probabilities(const std::vector<double>& probs, double temperature) {
  require(temperature > 0 && std::isfinite(temperature),
          "temperature must be a finite positive number");
  if (temperature == 1) return probs;
  if (probs.size() == 2) {
    const double p1 = tempered_p_malignant(probs[0], probs[1], temperature);
    return {1 - p1, p1};
  }
  std::vector<double> logs;
  for (double p : probs) {
    if (std::isnan(p)) return std::vector<double>(probs.size(), std::nan(""));
    logs.push_back(clamped_log(p));
  }
  const double lse = log_sum_exp(logs, temperature);
  std::vector<double> out;
  for (double l : logs) out.push_back(std::exp(l / temperature - lse));
  return out;
}

std::vector<double> tempered_probabilities(const std::vector<double>& probs, const Tempering& t,
                                           const std::vector<bool>& malignant) {
  for (double v : {t.temperature, t.within})
    require(v > 0 && std::isfinite(v), "temperature must be a finite positive number");
  if (t.is_identity()) return probs;
  if (!t.grouped || probs.size() == 2) return tempered_probabilities(probs, t.temperature);
  require(malignant.size() == probs.size(), "tempered_probabilities: one flag per class");
  // Every class on one side: P(side) = 1, and `within` tempers them all.
  if (!has_both_sides(malignant)) return tempered_probabilities(probs, t.within);
  std::vector<double> logs;
  for (double p : probs) {
    if (std::isnan(p)) return std::vector<double>(probs.size(), std::nan(""));
    logs.push_back(clamped_log(p));
  }
  // P(side) from the tempered log-odds of the sides, then each class's share
  // of its side from softmax(log p / within) over that side.
  const double z = sides_log_odds(logs, malignant) / t.temperature;
  const double log_side[2] = {-softplus(z), -softplus(-z)};  // benign, malignant
  const double lse_side[2] = {side_log_sum_exp(logs, malignant, false, t.within),
                              side_log_sum_exp(logs, malignant, true, t.within)};
  std::vector<double> out;
  for (size_t k = 0; k < logs.size(); ++k) {
    const int side = malignant[k] ? 1 : 0;
    out.push_back(std::exp(log_side[side] + logs[k] / t.within - lse_side[side]));
  }
  return out;
}

GroupedTemperatureFit fit_grouped_temperature(const std::vector<std::vector<double>>& log_probs,
                                              const std::vector<int>& labels,
                                              const std::vector<bool>& malignant) {
  require(log_probs.size() == labels.size(), "fit_temperature: one label per prediction");
  // One side only (a column whose images are all benign): nothing to fit
  // between the sides, and `within` is one temperature for every class.
  const bool both = has_both_sides(malignant);
  std::vector<double> z;
  std::vector<int> binary, side_labels;
  std::vector<std::vector<double>> side_rows, probs;
  for (size_t i = 0; i < log_probs.size(); ++i) {
    const std::vector<double>& row = log_probs[i];
    require(row.size() == malignant.size(), "fit_temperature: one flag per class");
    require(labels[i] >= 0 && size_t(labels[i]) < row.size(),
            "fit_temperature: a label outside its row");
    for (double l : row)
      require(std::isfinite(l), "fit_temperature: log-probabilities must be finite");
    const bool side = malignant[size_t(labels[i])];
    if (both) z.push_back(sides_log_odds(row, malignant)), binary.push_back(side ? 1 : 0);
    std::vector<double> own;  // the row's classes on the label's side
    int position = 0;
    for (size_t k = 0; k < row.size(); ++k) {
      if (malignant[k] != side) continue;
      if (k == size_t(labels[i])) position = int(own.size());
      own.push_back(row[k]);
    }
    if (own.size() >= 2) side_rows.push_back(own), side_labels.push_back(position);
    std::vector<double> p;
    for (double l : row) p.push_back(std::exp(l));
    probs.push_back(p);
  }
  GroupedTemperatureFit fit;
  fit.between = fit_temperature(z, binary);
  fit.within = search_temperature(
      int(side_rows.size()), [&](double t) { return softmax_nll(side_rows, side_labels, t); },
      [&](double t) {
        return confidence_ece_of(probs, labels, {fit.between.temperature, t, true}, malignant);
      });
  return fit;
}

nlohmann::json GroupedTemperatureFit::to_json() const {
  nlohmann::json j = between.to_json();
  j["method"] = "grouped";
  j["within"] = within.to_json();
  return j;
}

double log_odds(double p_benign, double p_malignant) {
  // A diverged network's NaN passes through, for the metrics to name it.
  if (std::isnan(p_benign) || std::isnan(p_malignant)) return std::nan("");
  require(p_benign >= 0 && p_malignant >= 0 && p_benign + p_malignant > 0,
          "log_odds: class probabilities must be non-negative and not both 0");
  if (p_malignant == 0) return -kLogOddsLimit;
  if (p_benign == 0) return kLogOddsLimit;
  return std::clamp(std::log(p_malignant) - std::log(p_benign), -kLogOddsLimit, kLogOddsLimit);
}

double tempered_p_malignant(double p_benign, double p_malignant, double temperature) {
  require(temperature > 0 && std::isfinite(temperature),
          "temperature must be a finite positive number");
  if (temperature == 1) return p_malignant;
  // sigmoid(z / T), z the log-odds: the two-class softmax of z / T.
  const double z = log_odds(p_benign, p_malignant) / temperature;
  return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z));
}

double temperature_nll(const std::vector<double>& log_odds, const std::vector<int>& labels,
                       double temperature) {
  require(log_odds.size() == labels.size(), "temperature_nll: one label per prediction");
  if (log_odds.empty()) return 0;
  double sum = 0;
  for (size_t i = 0; i < log_odds.size(); ++i) {
    const double z = log_odds[i] / temperature;
    sum += softplus(labels[i] ? -z : z);  // -log sigmoid(+-z)
  }
  return sum / double(log_odds.size());
}

TemperatureFit fit_temperature(const std::vector<double>& log_odds,
                               const std::vector<int>& labels) {
  require(log_odds.size() == labels.size(), "fit_temperature: one label per prediction");
  for (double z : log_odds) require(std::isfinite(z), "fit_temperature: log-odds must be finite");
  return search_temperature(
      int(log_odds.size()), [&](double t) { return temperature_nll(log_odds, labels, t); },
      [&](double t) { return ece_at(log_odds, labels, t); });
}

nlohmann::json TemperatureFit::to_json() const {
  nlohmann::json j = {{"temperature", temperature}, {"nll_before", nll_before},
                      {"nll_after", nll_after},     {"ece_before", ece_before},
                      {"ece_after", ece_after},     {"fitted_on", count},
                      {"at_bound", at_bound}};
  if (!declined.empty()) j["declined"] = declined;
  return j;
}

}  // namespace histocnn
