#include "slide/slide_evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "slide/evaluation_text.h"
#include "study/eval_figures.h"

namespace histocnn {
namespace {

const std::map<std::string, std::string>& score_keys() {
  static const std::map<std::string, std::string> keys = {{"max", "p_max"},
                                                          {"top-mean", "p_top_mean"},
                                                          {"mean", "p_mean"},
                                                          {"area", "malignant_area_fraction"},
                                                          {"mil", "p_mil"}};
  return keys;
}

using evaluation_text::interval_json;
using evaluation_text::number_or_null;
using evaluation_text::sensitivity_of;
using evaluation_text::specificity_of;

// NaN without both classes (compute_metrics gives 0 for no predictions).
double auc_of(const std::vector<Prediction>& predictions) {
  return predictions.empty() ? std::nan("") : compute_metrics(predictions).auc;
}

// Youden's J over the chosen score: the cut with the largest sensitivity +
// specificity - 1 (ties to the higher cut), its threshold halfway between the
// lowest score called malignant and the highest called benign (the scores
// themselves would put it on a slide: saturated scores of 1.0 would make
// 1.0 the threshold). Null without both classes.
nlohmann::json youden_threshold(const std::vector<Prediction>& predictions) {
  int positives = 0;
  for (const auto& p : predictions) positives += p.label;
  const int negatives = int(predictions.size()) - positives;
  if (!positives || !negatives) return nullptr;
  std::vector<Prediction> sorted = predictions;
  std::sort(sorted.begin(), sorted.end(),
            [](const Prediction& a, const Prediction& b) { return a.p_malignant > b.p_malignant; });
  double best_j = -2, best_t = 0, best_sensitivity = 0, best_specificity = 0;
  int tp = 0, fp = 0;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    for (; j < sorted.size() && sorted[j].p_malignant == sorted[i].p_malignant; ++j)
      (sorted[j].label ? tp : fp)++;
    const double sensitivity = double(tp) / positives, specificity = 1 - double(fp) / negatives;
    if (sensitivity + specificity - 1 > best_j) {
      best_j = sensitivity + specificity - 1;
      const double below = j < sorted.size() ? sorted[j].p_malignant : sorted[i].p_malignant;
      best_t = (double(sorted[i].p_malignant) + below) / 2;
      best_sensitivity = sensitivity;
      best_specificity = specificity;
    }
    i = j;
  }
  return {{"threshold", best_t},
          {"sensitivity", best_sensitivity},
          {"specificity", best_specificity},
          {"note",
           "Youden's J on these very slides, so optimistic here: choose a threshold on a "
           "tuning cohort and apply it to another with --slide-threshold"}};
}

// The evaluated slides grouped into the bootstrap's units.
std::vector<std::vector<size_t>> units_of(const std::vector<ScoredSlide>& kept, bool* by_patient) {
  std::map<std::string, std::vector<size_t>> groups;
  *by_patient = false;
  for (size_t i = 0; i < kept.size(); ++i) {
    *by_patient |= !kept[i].patient.empty();
    groups[kept[i].patient.empty() ? "slide\x1f" + kept[i].slide : "patient\x1f" + kept[i].patient]
        .push_back(i);
  }
  std::vector<std::vector<size_t>> units;
  for (auto& [key, members] : groups) units.push_back(std::move(members));
  return units;
}

// The percentile intervals over `replicates` resamples of the units.
void bootstrap(SlideEvaluation& e, const std::vector<std::vector<size_t>>& units) {
  std::map<std::string, std::vector<double>> auc;
  std::vector<double> sensitivity, specificity, balanced;
  Rng rng(e.options.seed);
  for (int r = 0; r < e.options.replicates && !units.empty(); ++r) {
    std::vector<size_t> drawn;
    for (size_t u = 0; u < units.size(); ++u) {
      const auto& members = units[size_t(rng.below(units.size()))];
      drawn.insert(drawn.end(), members.begin(), members.end());
    }
    for (const auto& [score, predictions] : e.by_score) {
      std::vector<Prediction> sample;
      for (size_t i : drawn) sample.push_back(predictions[i]);
      const Metrics m = compute_metrics(sample, e.options.threshold);
      auc[score].push_back(m.auc);
      if (score != e.options.score) continue;
      sensitivity.push_back(sensitivity_of(m));
      specificity.push_back(specificity_of(m));
      balanced.push_back(m.tp + m.fn && m.tn + m.fp ? m.balanced_accuracy : std::nan(""));
    }
  }
  for (const auto& [score, values] : auc) e.auc_interval[score] = percentile_interval(values);
  e.sensitivity = percentile_interval(sensitivity);
  e.specificity = percentile_interval(specificity);
  e.balanced_accuracy = percentile_interval(balanced);
}

}  // namespace

const std::vector<std::string>& slide_score_names() {
  static const std::vector<std::string> names = {"max", "top-mean", "mean", "area"};
  return names;
}

std::string slide_score_key(const std::string& score) {
  const auto it = score_keys().find(score);
  require(it != score_keys().end(),
          "--slide-score " + score + ": not one of max, top-mean, mean, area");
  return it->second;
}

SlideEvaluation evaluate_slides(const std::vector<ScoredSlide>& slides,
                                const SlideEvaluationOptions& options) {
  SlideEvaluation e;
  e.options = options;
  if (e.options.scores.empty()) e.options.scores = slide_score_names();
  const std::vector<std::string>& names = e.options.scores;
  slide_score_key(options.score);
  for (const std::string& score : names) slide_score_key(score);
  require(std::find(names.begin(), names.end(), options.score) != names.end(),
          "--slide-score " + options.score + ": not one of the scores compared");
  require(options.threshold >= 0 && options.threshold <= 1, "--slide-threshold: between 0 and 1");
  std::vector<ScoredSlide> kept;
  for (const std::string& score : names) e.by_score[score] = {};
  auto numbers = [&](const nlohmann::json& summary) {  // null: NaN went through a file
    for (const std::string& score : names)
      if (!summary.contains(slide_score_key(score)) ||
          !summary.at(slide_score_key(score)).is_number())
        return false;
    return true;
  };
  for (const ScoredSlide& s : slides) {
    if (!s.scored) {
      e.left_out.push_back({s.slide, "failed"});
    } else if (s.summary.value("tiles_scored", 0) == 0 || !s.summary.contains("p_top_mean")) {
      e.left_out.push_back({s.slide, "no tissue scored"});
    } else if (!numbers(s.summary)) {
      e.left_out.push_back({s.slide, "its scores are not numbers"});
    } else {
      kept.push_back(s);
      e.evaluated.push_back(s.slide);
      e.chosen_scores.push_back(s.summary.at(slide_score_key(options.score)).get<double>());
      for (const std::string& score : names)
        e.by_score[score].push_back({s.summary.at(slide_score_key(score)).get<float>(), s.label});
    }
  }
  e.metrics = compute_metrics(e.by_score[options.score], options.threshold);
  e.metrics.auc = auc_of(e.by_score[options.score]);
  bool by_patient = false;
  const auto units = units_of(kept, &by_patient);
  e.unit = by_patient ? "patient" : "slide";
  e.units = int(units.size());
  bootstrap(e, units);
  return e;
}

nlohmann::json SlideEvaluation::to_json() const {
  const Metrics& m = metrics;
  nlohmann::json scores = nlohmann::json::object();
  for (const auto& [score, predictions] : by_score) {
    const auto interval = auc_interval.find(score);
    scores[score] = {
        {"summary_key", slide_score_key(score)},
        {"auc", number_or_null(auc_of(predictions))},
        {"auc_95ci", interval == auc_interval.end() ? nullptr : interval_json(interval->second)}};
  }
  nlohmann::json per_slide = nlohmann::json::array();
  const auto& chosen = by_score.at(options.score);
  for (size_t i = 0; i < evaluated.size(); ++i)
    per_slide.push_back(
        {{"slide", evaluated[i]},
         {"label", chosen[i].label ? "malignant" : "benign"},
         {"score", chosen_scores[i]},
         {"called", double(chosen[i].p_malignant) >= options.threshold ? "malignant" : "benign"}});
  nlohmann::json out_of_it = nlohmann::json::array();
  for (const auto& [slide, why] : left_out) out_of_it.push_back({{"slide", slide}, {"why", why}});
  return {
      {"score", options.score},
      {"summary_key", slide_score_key(options.score)},
      {"threshold", options.threshold},
      {"slides", m.count},
      {"malignant", m.tp + m.fn},
      {"benign", m.tn + m.fp},
      {"auc", number_or_null(m.auc)},
      {"auc_95ci", interval_json(auc_interval.count(options.score) ? auc_interval.at(options.score)
                                                                   : Interval{})},
      {"sensitivity", number_or_null(sensitivity_of(m))},
      {"sensitivity_95ci", interval_json(sensitivity)},
      {"specificity", number_or_null(specificity_of(m))},
      {"specificity_95ci", interval_json(specificity)},
      {"balanced_accuracy", m.count ? nlohmann::json(m.balanced_accuracy) : nullptr},
      {"balanced_accuracy_95ci", interval_json(balanced_accuracy)},
      {"accuracy", m.count ? nlohmann::json(m.accuracy) : nullptr},
      {"confusion", {{"tn", m.tn}, {"fp", m.fp}, {"fn", m.fn}, {"tp", m.tp}}},
      {"threshold_from_these_slides", youden_threshold(chosen)},
      {"by_score", scores},
      {"bootstrap",
       {{"unit", unit},
        {"units", units},
        {"replicates", options.replicates},
        {"seed", options.seed},
        {"interval", "percentile, 95%"}}},
      {"per_slide", per_slide},
      {"left_out", out_of_it}};
}

std::string SlideEvaluation::headline() const {
  char text[320];
  const int malignant = metrics.tp + metrics.fn;
  std::snprintf(text, sizeof text,
                "slide level (%s, %d slides, %d malignant): ", options.score.c_str(), metrics.count,
                malignant);
  std::string line = text;
  const auto interval = auc_interval.find(options.score);
  line += evaluation_text::auc_headline(
      metrics.auc, interval == auc_interval.end() ? Interval{} : interval->second, units, unit,
      "it needs benign and malignant slides");
  std::snprintf(text, sizeof text, "; at %g: sensitivity %s, specificity %s", options.threshold,
                evaluation_text::fixed_or_na(sensitivity_of(metrics), 2).c_str(),
                evaluation_text::fixed_or_na(specificity_of(metrics), 2).c_str());
  line += text;
  std::string why;  // the distinct reasons, in order
  for (const auto& [slide, reason] : left_out)
    if (why.find(reason) == std::string::npos) why += (why.empty() ? "" : ", ") + reason;
  if (!left_out.empty())
    line += "; " + std::to_string(left_out.size()) + " slide" + (left_out.size() > 1 ? "s" : "") +
            " left out (" + why + ")";
  return line;
}

void write_slide_evaluation(const SlideEvaluation& e, const std::string& folder) {
  std::vector<RocSeries> series;
  const std::map<std::string, std::string> styles = {
      {"max", "linespoints lw 2 dt 2 pt 7 ps 0.9"},
      {"top-mean", "linespoints lw 2 dt 1 pt 5 ps 0.9"},
      {"mean", "linespoints lw 2 dt 3 pt 9 ps 1.1"},
      {"area", "linespoints lw 2 dt 4 pt 6 ps 1.3"},
      {"mil", "linespoints lw 3 dt 1 pt 13 ps 1.1"}};
  for (const std::string& score : e.options.scores)
    series.push_back({score + (score == e.options.score ? " (chosen)" : ""), e.by_score.at(score),
                      styles.at(score)});
  write_roc_figure(series, folder + "/slide-roc",
                   "slide-level ROC, " + std::to_string(e.metrics.count) + " slides",
                   "benign and malignant slides are both needed");
  write_file_atomically(folder + "/slide-evaluation.json", e.to_json().dump(2) + "\n");
}

}  // namespace histocnn
