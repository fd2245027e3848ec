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

struct ClassSamples {
  std::vector<double> accuracy, macro_f1, kappa;
  void add(const ClassMetrics& m) {
    accuracy.push_back(m.accuracy);
    macro_f1.push_back(m.macro_f1);
    kappa.push_back(m.quadratic_kappa);
  }
  ClassLevelIntervals intervals() const {
    return {percentile_interval(accuracy), percentile_interval(macro_f1),
            percentile_interval(kappa)};
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

nlohmann::json class_level_json(const ClassLevelIntervals& l) {
  return {{"accuracy", interval_json(l.accuracy)},
          {"macro_f1", interval_json(l.macro_f1)},
          {"quadratic_kappa", interval_json(l.quadratic_kappa)}};
}

nlohmann::json BootstrapIntervals::to_json() const {
  nlohmann::json j = {{"method", "patient bootstrap, 95% percentile"},
                      {"replicates", replicates},
                      {"per_crop", level_json(per_crop)},
                      {"per_image", level_json(per_image)},
                      {"per_patient", level_json(per_patient)}};
  if (classes)
    j["classes"] = {{"per_crop", class_level_json(class_per_crop)},
                    {"per_image", class_level_json(class_per_image)},
                    {"per_patient", class_level_json(class_per_patient)}};
  return j;
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
  const int k = int(report.class_names.size());
  const bool classes = k > 2 && report.class_crops.size() == report.crops.size();
  Samples crop, image, patient;
  ClassSamples class_crop, class_image, class_patient;
  Rng rng(seed);
  for (int b = 0; b < replicates && !patients.empty(); ++b) {
    std::vector<Prediction> crops;
    std::vector<ClassPrediction> class_crops;
    std::vector<std::string> images, owners;  // per drawn crop; a patient drawn twice counts twice
    for (size_t draw = 0; draw < patients.size(); ++draw) {
      const std::string copy = "#" + std::to_string(draw);
      for (size_t c : *patients[rng.below(patients.size())]) {
        crops.push_back(report.crops[c]);
        if (classes) class_crops.push_back(report.class_crops[c]);
        images.push_back(report.crop_images[c] + copy);
        owners.push_back(report.crop_patients[c] + copy);
      }
    }
    crop.add(compute_metrics(crops));
    image.add(compute_metrics(aggregate(crops, images)));
    patient.add(compute_metrics(aggregate(crops, owners)));
    if (!classes) continue;
    class_crop.add(compute_class_metrics(class_crops, k));
    class_image.add(compute_class_metrics(aggregate_classes(class_crops, images), k));
    class_patient.add(compute_class_metrics(aggregate_classes(class_crops, owners), k));
  }
  BootstrapIntervals out;
  out.replicates = replicates;
  out.classes = classes;
  out.class_per_crop = class_crop.intervals();
  out.class_per_image = class_image.intervals();
  out.class_per_patient = class_patient.intervals();
  out.per_crop = crop.intervals();
  out.per_image = image.intervals();
  out.per_patient = patient.intervals();
  return out;
}

}  // namespace histocnn
