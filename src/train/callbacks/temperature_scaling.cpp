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
  TemperatureFit fit;
  if (v.class_names.size() > 2) {  // K classes: softmax(log p / T) of every class
    for (const ClassPrediction& p : v.class_crops) labels.push_back(p.label);
    fit = fit_class_temperature(v.crop_log_probs, labels, v.class_malignant);
  } else {
    for (const Prediction& p : v.raw_crops) labels.push_back(p.label);
    fit = fit_temperature(v.crop_log_odds, labels);
  }
  s.calibration = fit.to_json();
  s.row["temperature"] = fit.temperature;
  char text[48];
  std::snprintf(text, sizeof text, "  T %.2f", fit.temperature);
  s.line += text;
}

}  // namespace histocnn
