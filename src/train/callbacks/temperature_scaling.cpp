#include <cstdio>

#include "train/callbacks.h"
#include "train/temperature.h"
#include "train/trainer.h"

namespace histocnn {

void TemperatureScaling::on_validation_end(Trainer& t) {
  TrainState& s = t.state();
  if (!t.comm().root() || !s.validation || s.validation->crop_log_odds.empty()) return;
  const EvalReport& v = *s.validation;
  std::vector<int> labels;
  char text[64];
  if (v.class_names.size() > 2) {  // K classes: benign/malignant, then within each side
    for (const ClassPrediction& p : v.class_crops) labels.push_back(p.label);
    const GroupedTemperatureFit fit =
        fit_grouped_temperature(v.crop_log_probs, labels, v.class_malignant);
    s.calibration = fit.to_json();
    s.row["temperature"] = fit.between.temperature;
    s.row["within_temperature"] = fit.within.temperature;
    std::snprintf(text, sizeof text, "  T %.2f, within %.2f", fit.between.temperature,
                  fit.within.temperature);
  } else {
    for (const Prediction& p : v.raw_crops) labels.push_back(p.label);
    const TemperatureFit fit = fit_temperature(v.crop_log_odds, labels);
    s.calibration = fit.to_json();
    s.row["temperature"] = fit.temperature;
    std::snprintf(text, sizeof text, "  T %.2f", fit.temperature);
  }
  s.line += text;
}

}  // namespace histocnn
