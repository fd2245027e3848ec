// Option groups shared by several subcommands.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "train/checkpoint.h"
#include "train/train_options.h"

namespace histocnn::cli {

// "200" -> 200x200; "775x522" -> 775x522. Throws naming `flag`.
void parse_size(const std::string& text, const std::string& flag, int* width, int* height);

// --data, --split, --folds, --fold, --val-split, --fold-seed
void add_data_options(CLI::App& cmd, DataSelection& data);
// --crop, --crops-benign, --crops-malignant, --whole-image, --crop-seed
struct CropFlags {
  std::string crop = "256";
  bool whole = false;
};
void add_crop_options(CLI::App& cmd, CropOptions& crops, CropFlags& flags);
void apply_crop_flags(const CropFlags& flags, CropOptions& crops);
// --label-smoothing E and --smooth-to all|neighbours into `smoothing`
// (nn/elementwise.h); returns the --label-smoothing option (for a range
// check where the command wants one there).
CLI::Option* add_label_smoothing_options(CLI::App& cmd, elementwise::LabelSmoothing& smoothing);

// --tta/--no-tta of eval, predict and slide: `flag` when the command line
// gave it, else what the models' recipe records (eval_tta). When the models'
// temperatures will be applied (`calibrated`) and one was fitted on the other
// kind of predictions (its calibration's "tta"), says so once on stderr: a T
// fitted on TTA predictions leaves single views overconfident, and one fitted
// on single views leaves TTA predictions underconfident.
bool resolve_tta(const CLI::App& cmd, bool flag, const std::vector<ModelFile>& models,
                 bool calibrated);

}  // namespace histocnn::cli
