// Evaluation of a trained step on a set of examples: predictions per crop
// (optionally averaged over the dihedral transforms), aggregated per image and
// per patient, with the per-image verdicts a researcher tabulates.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "data/dataset.h"
#include "data/labels.h"
#include "dist/communicator.h"
#include "train/class_metrics.h"
#include "train/member_prediction.h"
#include "train/metrics.h"

namespace histocnn {

class BatchPool;

// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& text);

// One image's verdict: the mean P(malignant) over its crops (and over the
// members of an ensemble).
struct ImageVerdict {
  std::string name, patient;
  int label = 0;  // benign 0 / malignant 1 (the binary view of its class)
  int crops = 0;
  double p_malignant = 0;
  int class_label = 0;              // its class under the label scheme
  std::vector<double> class_probs;  // mean over its crops
  // Ensembles: the standard deviation over the members of each member's own
  // image P(malignant) — how much the members disagree (0 for one model).
  double member_sd = 0;
};

struct EvalReport {
  // The binary view (benign/malignant; for a grade model, P(malignant) the
  // sum over its malignant grades).
  Metrics per_crop, per_image, per_patient;
  // The label scheme's classes: every crop's class probabilities (after the
  // temperatures) and, before them, their logs (a K-class temperature is
  // fitted on those), and the K-class metrics at the three levels.
  std::vector<std::string> class_names;
  std::vector<bool> class_malignant;  // per class: counted in P(malignant)
  std::vector<ClassPrediction> class_crops;
  std::vector<std::vector<double>> crop_log_probs;
  ClassMetrics class_per_crop, class_per_image, class_per_patient;
  std::vector<Prediction> crops;  // every crop's prediction (for ROC curves)
  // The same before the members' temperatures (equal to crops when all are
  // 1), and the log-odds a temperature is fitted on (train/temperature.h).
  std::vector<Prediction> raw_crops;
  std::vector<double> crop_log_odds;
  std::vector<std::pair<int, std::pair<int, int>>> crop_origins;  // (image, (x, y)) per crop
  std::vector<ImageVerdict> images;                               // sorted by name
  std::vector<Prediction> patients;                     // per patient (mean over its crops)
  std::vector<std::string> crop_images, crop_patients;  // each crop's image and patient
  // EvalOptions::bootstrap > 0: the 95% intervals of every metric
  // (train/bootstrap.h, BootstrapIntervals::to_json); null otherwise.
  nlohmann::json intervals;
  // EvalOptions::calibration: expected calibration error and the reliability
  // diagram's points per crop and image (train/calibration.h), and, for
  // models with a temperature, the same before it ("uncalibrated") and the
  // temperatures; null otherwise.
  nlohmann::json calibration;
  bool tta = false;
  int members = 1;  // models averaged (an ensemble's members)
  // More than two classes: "classes" holds the names and the K-class
  // metrics per level (ClassMetrics::to_json).
  nlohmann::json to_json() const;
  // image,patient,label,crops,p_malignant,prediction[,member_sd for ensembles]
  // and, with more than two classes, class,predicted_class,p_<class>...
  std::string images_csv() const;
  // image,patient,label,x,y,p_malignant: every crop (x, y in the crop's source image)
  std::string crops_csv(const ExampleSet& set) const;

 private:
  std::string class_header() const;  // "\n", or the class columns' names and "\n"
  std::string class_columns(int label, const std::vector<double>& probs) const;
};

struct EvalOptions {
  // Test-time augmentation: every crop's P(malignant) is the mean over its 8
  // dihedral transforms (4 for non-square inputs).
  bool tta = false;
  // Patient-level bootstrap resamples for confidence intervals (0: none).
  int bootstrap = 0;
  bool calibration = false;  // ECE and reliability per crop and image
  // Each member's tempering (train/temperature.h); empty: none for all.
  std::vector<Tempering> temperings;
  uint64_t bootstrap_seed = 1;
  // What the examples' labels mean (their classes, and which are malignant).
  LabelScheme labels;
  // Loader threads beside the prediction: loader_workers_for (data/loader.h)
  // gives 0 for a CPU step, whose OpenMP team then prepares each batch.
  int loader_workers = 1;
  // Where the loader's batch buffers come from and go back to, kept from
  // call to call (the trainer validates every epoch); null: buffers made for
  // this call. Either way evaluate() sets the pool's source and form
  // (prediction_form: bytes where every member expands them itself; one
  // member's input_buffers(), page-locked for the CUDA step).
  BatchPool* batch_buffers = nullptr;
};

// Predicts every example with `step` and computes metrics at all three levels.
// With a communicator of N processes, each predicts every N-th example and
// rank 0 gathers the predictions (the others get an empty report).
EvalReport evaluate(TrainingStep& step, const ExampleSet& examples,
                    const Normalization& normalization = {}, Communicator* comm = nullptr,
                    const EvalOptions& options = {});

// An ensemble: every crop's P(malignant) is the mean over the members (each
// a step of the same input shape and batch, fed the same normalised batch).
// Requires: at least one member; all of the same batch size.
EvalReport evaluate(const std::vector<TrainingStep*>& members, const ExampleSet& examples,
                    const Normalization& normalization = {}, Communicator* comm = nullptr,
                    const EvalOptions& options = {});

}  // namespace histocnn
