// Deep ensembles (Lakshminarayanan et al. 2017): several networks trained
// alike from other seeds (initialisation, order, dropout, augmentation), their
// P(malignant) averaged. On 85 GlaS images one training seed moves the
// cross-validated image accuracy by one or two images
// (docs/results/glas-cv.md); averaging members removes that noise, and their
// disagreement (member_sd) says how sure the ensemble is of each image.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "train/checkpoint.h"
#include "train/run_training.h"

namespace histocnn {

// Trains options.ensemble (>= 2) members on one shared TrainingData: member k
// (1-based) with seed options.seed + k - 1 into <output>/member<k>/ (each a
// complete training folder: checkpoint, model, metrics; --resume continues
// each), then writes <output>/model.safetensors as an ensemble file (and
// model.best.safetensors from the members' best, with --select-by), scores
// both on the validation images and writes <output>/metrics.json (validation,
// best_validation). With several processes, rank 0 alone combines and scores.
// Returns that summary.
nlohmann::json train_ensemble(const TrainOptions& options);

// Every model of `paths` (an ensemble file gives its members), checked to
// read images alike (input_difference); errors name the file.
std::vector<ModelFile> load_ensemble(const std::vector<std::string>& paths);

// Steps ready to predict with: one per model, compiled for `batch` rows on
// `device`, weights and batch-norm statistics set. Requires: the models share
// spec and input size (an ensemble file's members do).
struct PredictionSteps {
  std::unique_ptr<Backend> backend;  // outlives the steps
  std::vector<std::unique_ptr<TrainingStep>> owned;
  std::vector<TrainingStep*> members;
};
PredictionSteps compile_for_prediction(const Device& device, const std::vector<ModelFile>& models,
                                       int batch);

}  // namespace histocnn
