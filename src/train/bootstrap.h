// Confidence intervals by the patient-level bootstrap: patients are drawn
// with replacement (each bringing all its crops), the metrics recomputed on
// every resample, and the 2.5th and 97.5th percentiles reported. Patients,
// not crops or images, are the independent units — crops of one patient are
// alike, so resampling crops would give intervals far too narrow.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "train/evaluate.h"

namespace histocnn {

struct Interval {
  double low = 0, high = 0;
  int samples = 0;  // resamples where the metric exists (AUC needs both classes)
};

struct LevelIntervals {
  Interval accuracy, balanced_accuracy, auc;
};

// More than two classes: the K-class headline metrics (class_metrics.h).
struct ClassLevelIntervals {
  Interval accuracy, macro_f1, quadratic_kappa;
};

struct BootstrapIntervals {
  int replicates = 0;  // 0: not computed
  LevelIntervals per_crop, per_image, per_patient;
  bool classes = false;  // the K-class intervals below were computed
  ClassLevelIntervals class_per_crop, class_per_image, class_per_patient;
  // {"method", "replicates", "per_crop": {"accuracy": [low, high], ...}, ...,
  //  with more than two classes "classes": {"per_crop": {"accuracy",
  //  "macro_f1", "quadratic_kappa"}, ...}}
  nlohmann::json to_json() const;
};

// Requires: report.crop_images and report.crop_patients name every crop's
// image and patient (evaluate fills them). Deterministic for a seed.
BootstrapIntervals patient_bootstrap(const EvalReport& report, int replicates, uint64_t seed);

// The percentile interval of `values` (NaNs left out) at 2.5% and 97.5%.
Interval percentile_interval(std::vector<double> values);

}  // namespace histocnn
