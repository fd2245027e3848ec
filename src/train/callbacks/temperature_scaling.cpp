#include <cstdio>

#include "train/callbacks.h"
#include "train/temperature.h"
#include "train/trainer.h"

namespace histocnn {

void TemperatureScaling::on_validation_end(Trainer& t) {
  TrainState& s = t.state();
  if (!t.comm().root() || !s.validation || s.validation->crop_log_odds.empty()) return;
  std::vector<int> labels;
  for (const Prediction& p : s.validation->raw_crops) labels.push_back(p.label);
  const TemperatureFit fit = fit_temperature(s.validation->crop_log_odds, labels);
  s.calibration = fit.to_json();
  s.row["temperature"] = fit.temperature;
  char text[48];
  std::snprintf(text, sizeof text, "  T %.2f", fit.temperature);
  s.line += text;
}

}  // namespace histocnn
