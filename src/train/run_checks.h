// The checks a training run makes of its settings and its output folder
// before any work, and of its state while it runs: each rule once.
#pragma once

#include <string>
#include <vector>

namespace histocnn {

struct TrainOptions;

// `value` is a finite number in [lo, hi] (lo excluded when `open_low`);
// throws naming `flag` and the range.
void require_in_range(double value, double lo, double hi, const std::string& flag,
                      bool open_low = false);
// Every setting of a run in its range (NaN and infinities refused).
void validate_training_options(const TrainOptions& options);
// --output may not be the dataset, a folder holding one, or a folder holding a
// run (a checkpoint or model) unless --resume or --force.
void check_output_folder(const TrainOptions& options, const std::string& checkpoint,
                         const std::string& model);
bool all_finite(const std::vector<float>& values);
// "; the last good checkpoint is kept in PATH", or that none was written yet.
std::string kept_checkpoint(const std::string& path);

}  // namespace histocnn
