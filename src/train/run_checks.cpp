// The checks a training run makes of its settings and its output folder
// before any work, and of its state while it runs.
#include "train/run_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"
#include "core/paths.h"
#include "train/schedule.h"
#include "train/train_options.h"

namespace histocnn {
namespace fs = std::filesystem;

namespace {
// Every --select-by metric is larger-is-better. Throws on an unknown one.
void validate_selection_metric(const std::string& metric) {
  static const char* known[] = {"none", "image_auc", "image_accuracy", "image_balanced_accuracy",
                                "crop_accuracy"};
  for (const char* k : known)
    if (metric == k) return;
  fail(
      "--select-by: expected none, image_auc, image_accuracy, image_balanced_accuracy or "
      "crop_accuracy, got '" +
      metric + "'");
}
}  // namespace

// What --output may be: not the dataset, not a folder holding a dataset, and
// not a run (a checkpoint or model) unless resumed or forced.
void check_output_folder(const TrainOptions& o, const std::string& checkpoint,
                         const std::string& model) {
  require(!same_path(o.output, o.data.folder) && !is_dataset_folder(o.output),
          "--output " + o.output + ": is a dataset folder; write the run somewhere else");
  const bool has_run = fs::exists(checkpoint) || fs::exists(model);
  require(!has_run || o.resume || o.force,
          "--output " + o.output + ": already holds a run (" +
              (fs::exists(model) ? model : checkpoint) +
              "); continue it with --resume, or --force to start over and replace it");
}

bool all_finite(const std::vector<float>& values) {
  return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
}

// "; the last good checkpoint is kept in PATH", or that there is none yet.
std::string kept_checkpoint(const std::string& path) {
  return std::filesystem::exists(path) ? "; the last good checkpoint is kept in " + path
                                       : "; no checkpoint was written yet";
}

// `value` is a finite number in [lo, hi] (lo excluded when `open_low`):
// the range of every real-valued training setting, checked in one place
// (NaN passes every comparison-based range check, so it is named here).
void require_in_range(double value, double lo, double hi, const std::string& flag, bool open_low) {
  const bool ok = std::isfinite(value) && (open_low ? value > lo : value >= lo) && value <= hi;
  if (!ok) {
    char line[200];
    std::snprintf(line, sizeof line, "%s: %g is not a number in %c%g, %g]", flag.c_str(), value,
                  open_low ? '(' : '[', lo, hi);
    fail(line);
  }
}

void validate_training_options(const TrainOptions& o) {
  require(o.batch >= 1, "--batch: must be at least 1, got " + std::to_string(o.batch));
  require(o.epochs >= 1, "--epochs: must be at least 1, got " + std::to_string(o.epochs));
  validate(o.schedule);
  require_in_range(o.adam.learning_rate, 0, 1, "--lr", true);
  require_in_range(o.adam.beta1, 0, 0.999999, "--beta1");
  require_in_range(o.adam.beta2, 0, 0.999999999, "--beta2");
  require_in_range(o.adam.epsilon, 0, 1, "--eps", true);
  require_in_range(o.adam.weight_decay, 0, 10, "--weight-decay");
  require_in_range(o.label_smoothing.epsilon, 0, 0.5, "--label-smoothing");
  require_in_range(o.augment.stain_jitter, 0, 0.5, "--stain-jitter");
  require_in_range(o.augment.hed_jitter, 0, 1, "--hed-jitter");
  require_in_range(o.crops.max_background, 0, 1, "--max-background");
  validate_selection_metric(o.select_by);
  require(o.early_stop >= 0, "--early-stop: must not be negative");
  require(o.early_stop == 0 || o.select_by != "none",
          "--early-stop: needs a metric to watch (--select-by)");
  if (o.device != "cuda") {
    require(!o.cuda_graphs, "--cuda-graphs: applies to --device cuda");
    require(!o.cudnn_benchmark, "--cudnn-benchmark: applies to --device cuda");
    require(!o.cudnn_graph, "--cudnn-graph: applies to --device cuda");
    require(!o.channels_last, "--channels-last: applies to --device cuda");
  }
  require(o.checkpoints || !o.resume,
          "--no-checkpoint: a run that keeps no checkpoint cannot be resumed; drop --resume "
          "or --no-checkpoint");
  require(o.ensemble >= 1, "--ensemble: must be at least 1, got " + std::to_string(o.ensemble));
}

}  // namespace histocnn
