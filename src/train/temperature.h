// Temperature scaling (Guo et al. 2017): one scalar T > 0 that divides the
// network's logits before the softmax, fitted after training to minimise the
// negative log-likelihood on held-out predictions. It changes how sure the
// model says it is, never which class it picks (argmax is unchanged for any
// T), so accuracy and AUC stay as they were and calibration error falls.
//
// T is applied to class probabilities, not logits: softmax(z / T) equals
// p_k^(1/T) / sum_j p_j^(1/T) with p = softmax(z), computed in logs so a
// probability the float softmax rounded to 1 keeps its information in the
// other class's (tiny, still non-zero) probability.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace histocnn {

// The bounds of the search: beyond them a fit says more about a tiny or
// perfectly separated validation set than about the model.
inline constexpr double kMinTemperature = 0.05, kMaxTemperature = 20.0;
// Whether a fitted T is the search's upper bound: the scores it was fitted
// on barely separated the classes (an early epoch: every probability near
// 1/2), which the epoch line and eval say rather than show T as calibrated.
inline bool temperature_capped(double temperature) {
  return temperature >= kMaxTemperature / 1.001;
}

// P(malignant) after temperature T from the two class probabilities of a
// softmax (each computed as such, not as 1 - the other). T = 1: p_malignant
// unchanged; NaN in, NaN out. Requires T > 0; probabilities in [0, 1], not
// both 0.
double tempered_p_malignant(double p_benign, double p_malignant, double temperature);

// log P(malignant) - log P(benign), clamped to +-200 (a probability of 0);
// NaN when either is NaN (a diverged network: compute_metrics names it).
double log_odds(double p_benign, double p_malignant);

struct TemperatureFit {
  double temperature = 1;
  double nll_before = 0, nll_after = 0;  // mean negative log-likelihood at T = 1 and T
  int count = 0;                         // predictions it was fitted on
  double ece_before = 0, ece_after = 0;  // expected calibration error (10 bins), same
  bool at_bound = false;                 // the search ran into kMinTemperature or kMaxTemperature
  // Why the fit left T = 1 although the search found another: "raised the
  // calibration error" or "no better likelihood"; empty when applied.
  std::string declined;
  // {"temperature", "nll_before", "nll_after", "ece_before", "ece_after",
  //  "fitted_on", "at_bound"[, "declined"]}
  nlohmann::json to_json() const;
};

// The T minimising mean NLL of labels (0 benign, 1 malignant) under
// sigmoid(log_odds / T): golden-section search over log T in
// [kMinTemperature, kMaxTemperature] (the NLL is convex in 1/T, so unimodal).
// A fit that runs into kMinTemperature (the crops are separated perfectly:
// sharper is always likelier) keeps T = 1 with at_bound set; so does one that
// lowers the NLL but raises the expected calibration error on the same
// predictions (`declined` says which). Requires: equal
// sizes; finite log-odds. An empty set gives T = 1.
TemperatureFit fit_temperature(const std::vector<double>& log_odds, const std::vector<int>& labels);

// How one model's class probabilities are tempered: what its calibration
// stored (ModelFile::tempering). Two classes: `temperature` divides the
// log-odds. K classes, grouped (what training fits): `temperature` divides
// the benign/malignant log-odds and `within` the log-probabilities of the
// classes inside each side, so the binary view and the grades are each
// calibrated by their own evidence (fit_grouped_temperature). K classes, not
// grouped (grade models fitted before grouping existed): `temperature`
// divides every class's log-probability.
struct Tempering {
  double temperature = 1, within = 1;
  bool grouped = false;
  bool is_identity() const { return temperature == 1 && within == 1; }
};

// The probabilities after `t`. `malignant`: one flag per class (empty: two
// classes, benign then malignant); needed for a grouped tempering. NaN in,
// NaN out. Requires finite temperatures > 0.
std::vector<double> tempered_probabilities(const std::vector<double>& probs, const Tempering& t,
                                           const std::vector<bool>& malignant);

// The grouped fit of K classes: `between` is fit_temperature on the
// benign/malignant log-odds of the rows (its guards judge the binary view),
// `within` the T minimising the NLL of each row's class among the classes
// on its side (rows whose side has one class carry no information and are
// left out), declined like any fit when it raises the confidence
// calibration error of the whole tempered distribution. The NLL of a class
// is the sum of the two parts', so fitting them apart minimises it jointly.
struct GroupedTemperatureFit {
  TemperatureFit between, within;
  Tempering tempering() const { return {between.temperature, within.temperature, true}; }
  // between.to_json() plus {"method": "grouped", "within": within.to_json()}:
  // "temperature" stays the binary view's, as for a two-class model.
  nlohmann::json to_json() const;
};
// With every class on one side (a column whose images are all benign)
// `between` stays 1 and `within` is one temperature for all classes.
// Requires: equal sizes; labels in [0, K); finite rows of K log-probabilities
// (log 0 clamped to -200); `malignant` one flag per class.
GroupedTemperatureFit fit_grouped_temperature(const std::vector<std::vector<double>>& log_probs,
                                              const std::vector<int>& labels,
                                              const std::vector<bool>& malignant);

// K class probabilities after temperature T: softmax(log p / T), in logs
// (log 0 taken as -200). T = 1 copies them. Two classes: the same as
// tempered_p_malignant.
std::vector<double> tempered_probabilities(const std::vector<double>& probs, double temperature);
// log p clamped to -200 (a probability of 0); NaN passes through.
double clamped_log(double p);

// Mean NLL of the labels under sigmoid(log_odds / T).
double temperature_nll(const std::vector<double>& log_odds, const std::vector<int>& labels,
                       double temperature);

}  // namespace histocnn
