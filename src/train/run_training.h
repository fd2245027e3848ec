// A training run from options to files: open the run, prepare the data,
// compile the step, restore or initialise the weights, then a Trainer with
// the run's callbacks (train/callbacks.h) fits. Writes <output>/checkpoint,
// model(.best).safetensors and metrics.json (rank 0).
#pragma once

#include <nlohmann/json.hpp>

#include "train/train_options.h"
#include "train/training_data.h"

namespace histocnn {

// Trains; returns the summary JSON also written to <output>/metrics.json.
// `prepared`: data from prepare_training_data with the same data, crop and
// normalisation options (null: prepared here).
nlohmann::json run_training(const TrainOptions& options, const TrainingData* prepared = nullptr);

}  // namespace histocnn
