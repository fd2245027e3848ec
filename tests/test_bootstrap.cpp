// The patient bootstrap against its definition: the naive resampler below
// copies every drawn patient's crops, regroups them into images and
// patients and recomputes the metrics from scratch, as the bootstrap was
// first written. The fast one (weighted sums over presorted scores) must
// give the same intervals bit for bit, ties, repeated image names and K
// classes included.
#include <gtest/gtest.h>

#include <map>

#include "core/rng.h"
#include "train/bootstrap.h"
#include "train/class_metrics.h"
#include "train/metrics.h"

namespace histocnn {
namespace {

struct Collected {
  std::vector<double> accuracy, balanced_or_f1, auc_or_kappa;
  void add(double a, double b, double c) {
    accuracy.push_back(a), balanced_or_f1.push_back(b), auc_or_kappa.push_back(c);
  }
};

BootstrapIntervals copied_patients_bootstrap(const EvalReport& report, int replicates,
                                             uint64_t seed) {
  std::map<std::string, std::vector<size_t>> crops_of;
  for (size_t c = 0; c < report.crops.size(); ++c) crops_of[report.crop_patients[c]].push_back(c);
  std::vector<const std::vector<size_t>*> patients;
  for (const auto& [name, crops] : crops_of) patients.push_back(&crops);
  const int k = int(report.class_names.size());
  const bool classes = k > 2 && report.class_crops.size() == report.crops.size();
  Collected level[3], class_level[3];
  Rng rng(seed);
  for (int b = 0; b < replicates; ++b) {
    std::vector<Prediction> crops;
    std::vector<ClassPrediction> class_crops;
    std::vector<std::string> images, owners;
    for (size_t draw = 0; draw < patients.size(); ++draw) {
      const std::string copy = "#" + std::to_string(draw);
      for (size_t c : *patients[rng.below(patients.size())]) {
        crops.push_back(report.crops[c]);
        if (classes) class_crops.push_back(report.class_crops[c]);
        images.push_back(report.crop_images[c] + copy);
        owners.push_back(report.crop_patients[c] + copy);
      }
    }
    const Metrics m[3] = {compute_metrics(crops), compute_metrics(aggregate(crops, images)),
                          compute_metrics(aggregate(crops, owners))};
    for (int l = 0; l < 3; ++l) level[l].add(m[l].accuracy, m[l].balanced_accuracy, m[l].auc);
    if (!classes) continue;
    const ClassMetrics cm[3] = {compute_class_metrics(class_crops, k),
                                compute_class_metrics(aggregate_classes(class_crops, images), k),
                                compute_class_metrics(aggregate_classes(class_crops, owners), k)};
    for (int l = 0; l < 3; ++l)
      class_level[l].add(cm[l].accuracy, cm[l].macro_f1, cm[l].quadratic_kappa);
  }
  BootstrapIntervals out;
  out.replicates = replicates;
  out.classes = classes;
  LevelIntervals* levels[3] = {&out.per_crop, &out.per_image, &out.per_patient};
  ClassLevelIntervals* class_levels[3] = {&out.class_per_crop, &out.class_per_image,
                                          &out.class_per_patient};
  for (int l = 0; l < 3; ++l) {
    *levels[l] = {percentile_interval(level[l].accuracy),
                  percentile_interval(level[l].balanced_or_f1),
                  percentile_interval(level[l].auc_or_kappa)};
    *class_levels[l] = {percentile_interval(class_level[l].accuracy),
                        percentile_interval(class_level[l].balanced_or_f1),
                        percentile_interval(class_level[l].auc_or_kappa)};
  }
  return out;
}

// Patients with 1-4 images of 1-3 crops, scores on a coarse grid (many
// ties), image names reused across patients, K classes when k > 2.
EvalReport random_report(int patients, int k, uint64_t seed) {
  Rng rng(seed);
  EvalReport r;
  for (int c = 0; c < k; ++c) r.class_names.push_back("c" + std::to_string(c));
  for (int p = 0; p < patients; ++p) {
    const int patient_class = int(rng.below(uint64_t(k)));
    const int images = 1 + int(rng.below(4));
    for (int i = 0; i < images; ++i) {
      const int crops = 1 + int(rng.below(3));
      for (int c = 0; c < crops; ++c) {
        // Mostly the patient's class; now and then a crop labelled otherwise.
        const int label = rng.below(10) == 0 ? int(rng.below(uint64_t(k))) : patient_class;
        const float p_malignant = float(rng.below(9)) / 8.0f;
        r.crops.push_back({p_malignant, label == k - 1 ? 1 : 0});
        r.crop_images.push_back("img" + std::to_string(i));
        r.crop_patients.push_back("patient" + std::to_string(p));
        if (k > 2) {
          ClassPrediction cp;
          cp.label = label;
          cp.probs.assign(size_t(k), 0.0);
          cp.probs[rng.below(uint64_t(k))] += 0.6;
          for (auto& x : cp.probs) x += 0.4 / k;
          r.class_crops.push_back(cp);
        }
      }
    }
  }
  return r;
}

TEST(Bootstrap, WeightedResamplesEqualCopiedPatientsExactly) {
  for (const auto& [patients, k, seed] : std::vector<std::tuple<int, int, uint64_t>>{
           {2, 2, 1}, {7, 2, 2}, {40, 2, 3}, {25, 5, 4}, {60, 3, 5}, {1, 2, 6}}) {
    SCOPED_TRACE("patients " + std::to_string(patients) + ", classes " + std::to_string(k));
    const EvalReport r = random_report(patients, k, seed);
    const BootstrapIntervals fast = patient_bootstrap(r, 300, seed + 11);
    const BootstrapIntervals naive = copied_patients_bootstrap(r, 300, seed + 11);
    EXPECT_EQ(fast.to_json().dump(), naive.to_json().dump());
    EXPECT_EQ(fast.per_crop.auc.low, naive.per_crop.auc.low);
    EXPECT_EQ(fast.per_patient.auc.high, naive.per_patient.auc.high);
    EXPECT_EQ(fast.per_image.auc.samples, naive.per_image.auc.samples);
    EXPECT_EQ(fast.classes, k > 2);
    // The intervals are not degenerate: the comparison means something.
    if (patients >= 7) {
      EXPECT_LT(fast.per_crop.accuracy.low, fast.per_crop.accuracy.high);
    }
  }
}

}  // namespace
}  // namespace histocnn
