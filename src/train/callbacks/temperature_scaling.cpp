#include <cstdio>
#include <optional>

#include "train/callbacks.h"
#include "train/temperature.h"
#include "train/trainer.h"

namespace histocnn {

namespace {

// What the line adds to a T at the search's cap (temperature_capped).
const char* cap_note(const TemperatureFit& fit) {
  return temperature_capped(fit.temperature) ? " (capped: the scores barely separate the classes)"
                                             : "";
}

// The fit on `v`'s crops: grouped for K classes, the two-class fit
// otherwise; T (and T_within) into the epoch's row and line.
nlohmann::json fit_calibration(const EvalReport& v, TrainState& s) {
  std::vector<int> labels;
  char text[128];
  nlohmann::json calibration;
  if (v.class_names.size() > 2) {  // K classes: benign/malignant, then within each side
    for (const ClassPrediction& p : v.class_crops) labels.push_back(p.label);
    const GroupedTemperatureFit fit =
        fit_grouped_temperature(v.crop_log_probs, labels, v.class_malignant);
    calibration = fit.to_json();
    s.row["temperature"] = fit.between.temperature;
    s.row["within_temperature"] = fit.within.temperature;
    std::snprintf(text, sizeof text, "  T %.2f, within %.2f%s", fit.between.temperature,
                  fit.within.temperature, cap_note(fit.between));
  } else {
    for (const Prediction& p : v.raw_crops) labels.push_back(p.label);
    const TemperatureFit fit = fit_temperature(v.crop_log_odds, labels);
    calibration = fit.to_json();
    s.row["temperature"] = fit.temperature;
    std::snprintf(text, sizeof text, "  T %.2f%s", fit.temperature, cap_note(fit));
  }
  s.line += text;
  return calibration;
}

}  // namespace

void TemperatureScaling::on_validation_end(Trainer& t) {
  TrainState& s = t.state();
  if (!s.validation) return;
  // Every process takes part in the TTA pass (evaluate is collective).
  const bool kept = s.epoch + 1 == t.options().epochs || t.options().select_by != "none";
  std::optional<EvalReport> served;
  if (tta_ && kept) served = t.evaluate_validation(true);
  const EvalReport& v = served ? *served : *s.validation;
  if (!t.comm().root() || v.crop_log_odds.empty()) return;
  s.calibration = fit_calibration(v, s);
  s.calibration["tta"] = served.has_value();
  if (served) s.line += " (TTA)";
}

}  // namespace histocnn
