#include "train/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/rng.h"

namespace histocnn {

Interval percentile_interval(std::vector<double> values) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }),
               values.end());
  Interval interval;
  interval.samples = int(values.size());
  if (values.empty()) return interval;
  std::sort(values.begin(), values.end());
  // Linear interpolation between the order statistics (numpy's default).
  auto at = [&](double q) {
    const double position = q * double(values.size() - 1);
    const size_t below = size_t(std::floor(position));
    const size_t above = std::min(below + 1, values.size() - 1);
    return values[below] + (position - double(below)) * (values[above] - values[below]);
  };
  interval.low = at(0.025);
  interval.high = at(0.975);
  return interval;
}

namespace {

struct Samples {
  std::vector<double> accuracy, balanced_accuracy, auc;
  void add(const Metrics& m) {
    accuracy.push_back(m.accuracy);
    balanced_accuracy.push_back(m.balanced_accuracy);
    auc.push_back(m.auc);
  }
  LevelIntervals intervals() const {
    return {percentile_interval(accuracy), percentile_interval(balanced_accuracy),
            percentile_interval(auc)};
  }
};

nlohmann::json interval_json(const Interval& i) {
  if (i.samples == 0) return nullptr;
  return {i.low, i.high};
}

nlohmann::json level_json(const LevelIntervals& l) {
  return {{"accuracy", interval_json(l.accuracy)},
          {"balanced_accuracy", interval_json(l.balanced_accuracy)},
          {"auc", interval_json(l.auc)}};
}

}  // namespace

nlohmann::json BootstrapIntervals::to_json() const {
  return {{"method", "patient bootstrap, 95% percentile"},
          {"replicates", replicates},
          {"per_crop", level_json(per_crop)},
          {"per_image", level_json(per_image)},
          {"per_patient", level_json(per_patient)}};
}

BootstrapIntervals patient_bootstrap(const EvalReport& report, int replicates, uint64_t seed) {
  require(report.crop_patients.size() == report.crops.size() &&
              report.crop_images.size() == report.crops.size(),
          "patient_bootstrap: the report does not name each crop's image and patient");
  require(replicates >= 1, "patient_bootstrap: needs at least one replicate");
  std::map<std::string, std::vector<size_t>> crops_of;  // patient -> its crops
  for (size_t c = 0; c < report.crops.size(); ++c) crops_of[report.crop_patients[c]].push_back(c);
  std::vector<const std::vector<size_t>*> patients;
  for (const auto& [name, crops] : crops_of) patients.push_back(&crops);
  Samples crop, image, patient;
  Rng rng(seed);
  for (int b = 0; b < replicates && !patients.empty(); ++b) {
    std::vector<Prediction> crops;
    std::vector<std::string> images, owners;  // per drawn crop; a patient drawn twice counts twice
    for (size_t draw = 0; draw < patients.size(); ++draw) {
      const std::string copy = "#" + std::to_string(draw);
      for (size_t c : *patients[rng.below(patients.size())]) {
        crops.push_back(report.crops[c]);
        images.push_back(report.crop_images[c] + copy);
        owners.push_back(report.crop_patients[c] + copy);
      }
    }
    crop.add(compute_metrics(crops));
    image.add(compute_metrics(aggregate(crops, images)));
    patient.add(compute_metrics(aggregate(crops, owners)));
  }
  BootstrapIntervals out;
  out.replicates = replicates;
  out.per_crop = crop.intervals();
  out.per_image = image.intervals();
  out.per_patient = patient.intervals();
  return out;
}

}  // namespace histocnn
