// The recipe a training run records in its model file (histocnn.trained) and
// the check that a resumed run keeps it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "train/train_options.h"

namespace histocnn {

// Every setting that changes what a run computes (not: epochs, threads,
// device, allocator, progress), with the histocnn version and git revision.
nlohmann::json training_settings(const TrainOptions& options);

// Throws, naming the flag, where `now` differs from what `checkpoint`
// recorded (keys it does not record, from older versions, are not compared).
void require_same_settings(const nlohmann::json& recorded, const nlohmann::json& now,
                           const std::string& checkpoint);

}  // namespace histocnn
