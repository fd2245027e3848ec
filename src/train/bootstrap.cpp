#include "train/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

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

namespace {

// One level of the report (crops, images or patients) ready for resampling.
// A resample draws patients with replacement; a patient drawn n times
// brings n copies of its crops, images and itself, which is the same as
// counting each of its items n times. So every resample's metrics are
// weighted sums over the items, computed once: the scores are sorted once
// (in tie groups) and a resample costs one pass, where copying, regrouping
// and sorting the drawn items cost a sort per level and resample.
struct ResampledLevel {
  std::vector<size_t> patient;                       // per item: its patient's index
  std::vector<uint8_t> malignant, called_malignant;  // label, prediction at 0.5
  std::vector<size_t> by_score;                      // items in ascending score
  std::vector<size_t> tie_ends;       // end (in by_score) of each group of equal scores
  std::vector<int> label, predicted;  // K classes: true and argmax class
};

ResampledLevel resampled_level(const std::vector<Prediction>& items,
                               const std::vector<ClassPrediction>& classes,
                               std::vector<size_t> patient) {
  ResampledLevel level;
  level.patient = std::move(patient);
  for (const auto& p : items) {
    level.malignant.push_back(p.label == 1);
    level.called_malignant.push_back(double(p.p_malignant) >= 0.5);  // compute_metrics' default
  }
  level.by_score.resize(items.size());
  std::iota(level.by_score.begin(), level.by_score.end(), size_t(0));
  std::sort(level.by_score.begin(), level.by_score.end(),
            [&](size_t a, size_t b) { return items[a].p_malignant < items[b].p_malignant; });
  for (size_t i = 1; i <= items.size(); ++i)
    if (i == items.size() ||
        items[level.by_score[i]].p_malignant != items[level.by_score[i - 1]].p_malignant)
      level.tie_ends.push_back(i);
  for (const auto& p : classes) {
    level.label.push_back(p.label);
    level.predicted.push_back(p.predicted());
  }
  return level;
}

// compute_metrics of the level's items, item i counted weight[patient[i]]
// times. Exact: every sum is of integers or halves, so it equals the
// metrics of the copied items bit for bit.
Metrics weighted_metrics(const ResampledLevel& level, const std::vector<int>& weight) {
  int tn = 0, fp = 0, fn = 0, tp = 0;
  for (size_t i = 0; i < level.patient.size(); ++i) {
    const int w = weight[level.patient[i]];
    if (level.malignant[i])
      (level.called_malignant[i] ? tp : fn) += w;
    else
      (level.called_malignant[i] ? fp : tn) += w;
  }
  Metrics m = confusion_metrics(tn, fp, fn, tp);
  const double positives = tp + fn, negatives = tn + fp;
  if (positives == 0 || negatives == 0) return m;
  // Mann-Whitney U: each positive beats the negatives scored below it and
  // ties half of those scored alike.
  double u = 0, negatives_below = 0;
  size_t begin = 0;
  for (size_t end : level.tie_ends) {
    double pos = 0, neg = 0;
    for (size_t k = begin; k < end; ++k) {
      const size_t i = level.by_score[k];
      (level.malignant[i] ? pos : neg) += weight[level.patient[i]];
    }
    u += pos * (negatives_below + 0.5 * neg);
    negatives_below += neg;
    begin = end;
  }
  m.auc = u / (positives * negatives);
  return m;
}

ClassMetrics weighted_class_metrics(const ResampledLevel& level, const std::vector<int>& weight,
                                    int k) {
  std::vector<std::vector<int>> confusion(size_t(k), std::vector<int>(size_t(k), 0));
  for (size_t i = 0; i < level.label.size(); ++i)
    confusion[size_t(level.label[i])][size_t(level.predicted[i])] += weight[level.patient[i]];
  return class_metrics_of_confusion(std::move(confusion));
}

// The report's crops grouped by `key` (as aggregate() and
// aggregate_classes() group them), each group with its patient's index.
ResampledLevel grouped_level(const EvalReport& report, const std::vector<std::string>& key,
                             const std::vector<size_t>& crop_patient, bool classes) {
  std::map<std::string, size_t> patient_of;  // aggregate() orders groups by key
  std::vector<std::string> first_seen;       // aggregate_classes() by first appearance
  for (size_t c = 0; c < key.size(); ++c)
    if (patient_of.emplace(key[c], crop_patient[c]).second) first_seen.push_back(key[c]);
  std::vector<size_t> patient;
  for (const auto& [name, p] : patient_of) patient.push_back(p);
  const std::vector<Prediction> items = aggregate(report.crops, key);
  std::vector<ClassPrediction> class_items;
  if (classes) {
    // Reorder the class groups to aggregate()'s key order: one ResampledLevel, one patient list.
    std::vector<ClassPrediction> seen = aggregate_classes(report.class_crops, key);
    std::map<std::string, size_t> at;
    for (size_t g = 0; g < first_seen.size(); ++g) at[first_seen[g]] = g;
    for (const auto& [name, g] : at) class_items.push_back(std::move(seen[g]));
  }
  return resampled_level(items, class_items, std::move(patient));
}

}  // namespace

BootstrapIntervals patient_bootstrap(const EvalReport& report, int replicates, uint64_t seed) {
  require(report.crop_patients.size() == report.crops.size() &&
              report.crop_images.size() == report.crops.size(),
          "patient_bootstrap: the report does not name each crop's image and patient");
  require(replicates >= 1, "patient_bootstrap: needs at least one replicate");
  std::map<std::string, size_t> patient_index;  // patients in name order: the draws' order
  for (const auto& p : report.crop_patients) patient_index.emplace(p, 0);
  size_t next = 0;
  for (auto& [name, index] : patient_index) index = next++;
  std::vector<size_t> crop_patient;
  std::vector<std::string> image_key;  // an image belongs to its patient (names may repeat)
  for (size_t c = 0; c < report.crops.size(); ++c) {
    crop_patient.push_back(patient_index[report.crop_patients[c]]);
    image_key.push_back(report.crop_patients[c] + '\n' + report.crop_images[c]);
  }
  const int k = int(report.class_names.size());
  const bool classes = k > 2 && report.class_crops.size() == report.crops.size();
  const ResampledLevel crop_level = resampled_level(
      report.crops, classes ? report.class_crops : std::vector<ClassPrediction>{}, crop_patient);
  const ResampledLevel image_level = grouped_level(report, image_key, crop_patient, classes);
  const ResampledLevel patient_level =
      grouped_level(report, report.crop_patients, crop_patient, classes);
  Samples crop, image, patient;
  ClassSamples class_crop, class_image, class_patient;
  Rng rng(seed);
  const size_t patients = patient_index.size();
  std::vector<int> drawn(patients);
  for (int b = 0; b < replicates && patients > 0; ++b) {
    std::fill(drawn.begin(), drawn.end(), 0);
    for (size_t draw = 0; draw < patients; ++draw) drawn[rng.below(patients)]++;
    crop.add(weighted_metrics(crop_level, drawn));
    image.add(weighted_metrics(image_level, drawn));
    patient.add(weighted_metrics(patient_level, drawn));
    if (!classes) continue;
    class_crop.add(weighted_class_metrics(crop_level, drawn, k));
    class_image.add(weighted_class_metrics(image_level, drawn, k));
    class_patient.add(weighted_class_metrics(patient_level, drawn, k));
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
