#include "train/recipe.h"

#include <filesystem>
#include <map>

#include "core/error.h"

namespace histocnn {
namespace fs = std::filesystem;

// Every setting that changes what a run computes (not: epochs, threads,
// device, allocator, progress), recorded in the model file.
nlohmann::json training_settings(const TrainOptions& o) {
  const auto& d = o.data;
  return {{"data", fs::absolute(d.folder).lexically_normal().string()},
          {"split", d.split},
          {"folds", d.folds},
          {"fold", d.fold},
          {"fold_seed", d.fold_seed},
          {"val_split", d.val_split},
          {"crop", o.crops.whole_image ? "whole"
                                       : std::to_string(o.crops.crop_width) + "x" +
                                             std::to_string(o.crops.crop_height)},
          {"image_mpp", o.image_mpp},
          {"crops_benign", o.crops.benign_crops},
          {"crops_malignant", o.crops.malignant_crops},
          {"crops_per_class", o.crops.crops_per_class},
          {"labels", d.labels},
          {"malignant_classes", d.malignant_classes},
          {"crop_seed", o.crops.seed},
          {"batch", o.batch},
          {"seed", o.seed},
          {"lr", o.adam.learning_rate},
          {"beta1", o.adam.beta1},
          {"beta2", o.adam.beta2},
          {"eps", o.adam.epsilon},
          {"weight_decay", o.adam.weight_decay},
          {"label_smoothing", o.label_smoothing.epsilon},
          {"smooth_to", o.label_smoothing.neighbours ? "neighbours" : "all"},
          {"lr_schedule", o.schedule.kind},
          {"warmup_epochs", o.schedule.warmup_epochs},
          {"lr_min_fraction", o.schedule.min_fraction},
          {"lr_step_epochs", o.schedule.step_epochs},
          {"lr_gamma", o.schedule.gamma},
          {"flips", o.augment.flips},
          {"rotations", o.augment.rotations},
          {"stain_jitter", o.augment.stain_jitter},
          {"hed_jitter", o.augment.hed_jitter},
          {"max_background", o.crops.max_background},
          {"fresh_crops", o.crops.fresh_each_epoch},
          {"stain_normalize", o.stain_normalize},
          {"normalize", o.normalize},
          {"val_crops", o.val_crops_per_image},
          {"preset", o.preset},
          {"eval_tta", o.eval_tta},
          {"eval_crops", o.eval_crops},
          {"precision", o.precision},
          {"version", HISTOCNN_VERSION},
          {"git", HISTOCNN_GIT_REVISION}};
}

void require_same_settings(const nlohmann::json& recorded, const nlohmann::json& now,
                           const std::string& checkpoint) {
  static const std::map<std::string, std::string> flag = {
      {"data", "--data"},
      {"split", "--split"},
      {"folds", "--folds"},
      {"fold", "--fold"},
      {"fold_seed", "--fold-seed"},
      {"val_split", "--val-split"},
      {"crop", "--crop"},
      {"image_mpp", "--image-mpp"},
      {"crops_benign", "--crops-benign"},
      {"crops_malignant", "--crops-malignant"},
      {"crops_per_class", "--crops-per-class"},
      {"labels", "--labels"},
      {"malignant_classes", "--malignant-classes"},
      {"crop_seed", "--crop-seed"},
      {"batch", "--batch"},
      {"seed", "--seed"},
      {"lr", "--lr"},
      {"beta1", "--beta1"},
      {"beta2", "--beta2"},
      {"eps", "--eps"},
      {"weight_decay", "--weight-decay"},
      {"label_smoothing", "--label-smoothing"},
      {"smooth_to", "--smooth-to"},
      {"lr_schedule", "--lr-schedule"},
      {"warmup_epochs", "--warmup-epochs"},
      {"lr_min_fraction", "--lr-min-fraction"},
      {"lr_step_epochs", "--lr-step-epochs"},
      {"lr_gamma", "--lr-gamma"},
      {"flips", "--flips"},
      {"rotations", "--rotations"},
      {"stain_jitter", "--stain-jitter"},
      {"hed_jitter", "--hed-jitter"},
      {"max_background", "--max-background"},
      {"fresh_crops", "--fresh-crops"},
      {"stain_normalize", "--stain-normalize"},
      {"normalize", "--no-normalize"},
      {"val_crops", "--val-crops"}};
  for (const auto& [key, name] : flag) {
    if (!recorded.contains(key)) continue;  // older checkpoints record less
    if (recorded[key] != now.at(key))
      fail("--resume: " + name + " is " + now.at(key).dump() + " but " + checkpoint +
           " was trained with " + recorded[key].dump() +
           " (use the same setting, or --force-resume to continue anyway)");
  }
}

}  // namespace histocnn
