#include "slide/tile_evaluation.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "slide/evaluation_text.h"
#include "study/eval_figures.h"

namespace histocnn {
namespace {

using evaluation_text::interval_json;
using evaluation_text::number_or_null;
using evaluation_text::rate;
using evaluation_text::sensitivity_of;
using evaluation_text::specificity_of;

// The slides' bootstrap units (patients, or slides without one) as indices.
std::vector<int> unit_of_slide(const std::vector<AnnotatedSlide>& slides, int* units,
                               bool* by_patient) {
  std::map<std::string, int> index;
  std::vector<int> unit;
  *by_patient = false;
  for (const AnnotatedSlide& s : slides) {
    *by_patient |= !s.patient.empty();
    const std::string key = s.patient.empty() ? "slide\x1f" + s.slide : "patient\x1f" + s.patient;
    unit.push_back(index.emplace(key, int(index.size())).first->second);
  }
  *units = int(index.size());
  return unit;
}

nlohmann::json per_slide_json(const std::vector<AnnotatedSlide>& slides) {
  nlohmann::json rows = nlohmann::json::array();
  for (const AnnotatedSlide& s : slides) {
    int malignant = 0;
    for (const Prediction& p : s.tiles) malignant += p.label;
    const double auc = s.tiles.empty() ? std::nan("") : compute_metrics(s.tiles).auc;
    rows.push_back(
        {{"slide", s.slide},
         {"patient", s.patient.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.patient)},
         {"tiles", s.tiles.size()},
         {"malignant_tiles", malignant},
         {"auc", number_or_null(auc)}});
  }
  return rows;
}

}  // namespace

double weighted_auc(const std::vector<Prediction>& ascending, const std::vector<int>& unit,
                    const std::vector<double>& unit_weight) {
  double negatives_below = 0, area = 0, positives = 0;
  for (size_t i = 0; i < ascending.size();) {
    double weight[2] = {0, 0};  // negative, positive: this run of tied scores
    size_t j = i;
    for (; j < ascending.size() && ascending[j].p_malignant == ascending[i].p_malignant; ++j)
      weight[ascending[j].label != 0] += unit_weight[size_t(unit[j])];  // no branch to mispredict
    const double negative = weight[0], positive = weight[1];
    area += positive * (negatives_below + 0.5 * negative);
    negatives_below += negative;
    positives += positive;
    i = j;
  }
  return positives > 0 && negatives_below > 0 ? area / (positives * negatives_below) : std::nan("");
}

TileEvaluation evaluate_tiles(const std::vector<AnnotatedSlide>& slides,
                              const TileEvaluationOptions& options) {
  require(options.threshold >= 0 && options.threshold <= 1,
          "evaluate_tiles: a threshold between 0 and 1");
  TileEvaluation e;
  e.options = options;
  e.slides = int(slides.size());
  e.per_slide = per_slide_json(slides);
  bool by_patient = false;
  const std::vector<int> unit_of = unit_of_slide(slides, &e.units, &by_patient);
  e.unit = by_patient ? "patient" : "slide";
  std::vector<Prediction> pooled;
  std::vector<int> tile_unit;
  for (size_t s = 0; s < slides.size(); ++s)
    for (const Prediction& p : slides[s].tiles) {
      pooled.push_back(p);
      tile_unit.push_back(unit_of[s]);
    }
  e.metrics = compute_metrics(pooled, options.threshold);  // throws on a non-finite P
  if (pooled.empty()) return e;
  // Sorted once, into contiguous arrays: each replicate then walks memory in
  // order instead of jumping through an index at every tile.
  std::vector<size_t> order(pooled.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return pooled[a].p_malignant < pooled[b].p_malignant;
  });
  std::vector<Prediction> ascending;
  std::vector<int> ascending_unit;
  for (size_t i : order) {
    ascending.push_back(pooled[i]);
    ascending_unit.push_back(tile_unit[i]);
  }
  // Each unit's confusion at the threshold: a replicate's is their weighted sum.
  std::vector<std::array<double, 4>> confusion(size_t(e.units));  // tp, fn, tn, fp
  for (size_t i = 0; i < pooled.size(); ++i) {
    const bool called = double(pooled[i].p_malignant) >= options.threshold;
    confusion[size_t(tile_unit[i])][pooled[i].label ? (called ? 0 : 1) : (called ? 3 : 2)] += 1;
  }
  std::vector<double> auc, sensitivity, specificity, weight(size_t(e.units));
  Rng rng(options.seed);
  for (int r = 0; r < options.replicates; ++r) {
    std::fill(weight.begin(), weight.end(), 0.0);
    for (int u = 0; u < e.units; ++u) weight[size_t(rng.below(uint64_t(e.units)))] += 1;
    std::array<double, 4> c = {0, 0, 0, 0};
    for (size_t u = 0; u < weight.size(); ++u)
      for (size_t k = 0; k < 4; ++k) c[k] += weight[u] * confusion[u][k];
    auc.push_back(weighted_auc(ascending, ascending_unit, weight));
    sensitivity.push_back(rate(c[0], c[0] + c[1]));
    specificity.push_back(rate(c[2], c[2] + c[3]));
  }
  e.auc = percentile_interval(auc);
  e.sensitivity = percentile_interval(sensitivity);
  e.specificity = percentile_interval(specificity);
  return e;
}

nlohmann::json TileEvaluation::to_json() const {
  const Metrics& m = metrics;
  return {{"slides", slides},
          {"tiles", m.count},
          {"malignant_tiles", m.tp + m.fn},
          {"threshold", options.threshold},
          {"auc", m.count ? number_or_null(m.auc) : nullptr},
          {"auc_95ci", interval_json(auc)},
          {"sensitivity", number_or_null(sensitivity_of(m))},
          {"sensitivity_95ci", interval_json(sensitivity)},
          {"specificity", number_or_null(specificity_of(m))},
          {"specificity_95ci", interval_json(specificity)},
          {"accuracy", m.count ? nlohmann::json(m.accuracy) : nullptr},
          {"confusion", {{"tn", m.tn}, {"fp", m.fp}, {"fn", m.fn}, {"tp", m.tp}}},
          {"truth",
           "a tile is malignant when at least half of it (8 x 8 points) lies in the malignant "
           "regions and outside the excluded ones; a slide labelled benign without a file has "
           "every tile benign"},
          {"bootstrap",
           {{"unit", unit},
            {"units", units},
            {"replicates", options.replicates},
            {"seed", options.seed},
            {"interval", "percentile, 95%"},
            {"why", "tiles of one slide are alike: the slides (or patients) are drawn"}}},
          {"per_slide", per_slide}};
}

std::string TileEvaluation::headline() const {
  char head[160], tail[160];
  std::snprintf(head, sizeof head,
                "tile level (%d tiles of %d slides, %d malignant): ", metrics.count, slides,
                metrics.tp + metrics.fn);
  std::snprintf(tail, sizeof tail, "; at %g: sensitivity %s, specificity %s", options.threshold,
                evaluation_text::fixed_or_na(sensitivity_of(metrics), 3).c_str(),
                evaluation_text::fixed_or_na(specificity_of(metrics), 3).c_str());
  return head +
         evaluation_text::auc_headline(metrics.count ? metrics.auc : std::nan(""), auc, units, unit,
                                       "it needs benign and malignant tiles") +
         tail;
}

void write_tile_evaluation(const TileEvaluation& e, const std::vector<AnnotatedSlide>& slides,
                           const std::string& folder) {
  std::vector<Prediction> pooled;
  for (const AnnotatedSlide& s : slides)
    pooled.insert(pooled.end(), s.tiles.begin(), s.tiles.end());
  write_roc_figure(
      {{"pooled tiles of " + std::to_string(e.slides) + " slides", pooled, "lines lw 2 dt 1"}},
      folder + "/tile-roc", "tile-level ROC against the annotations",
      "benign and malignant tiles are both needed");
  write_file_atomically(folder + "/tile-evaluation.json", e.to_json().dump(2) + "\n");
}

}  // namespace histocnn
