// Model and checkpoint files (safetensors).
//
// model file:   the parameters under their PyTorch names (conv1.weight OIHW,
//               fc1.weight [out, in], bn1.weight, ...), the batch-norm buffers
//               (bnK.running_mean, bnK.running_var, bnK.num_batches_tracked I64),
//               and metadata:
//                 histocnn.spec   the model spec text
//                 histocnn.input  "WxH" input size
//                 histocnn.crop   "WxH" crop size, or "whole"
//                 histocnn.mpp    "X,Y" microns per network pixel (fixed crops)
//                 histocnn.normalize  per-channel mean,std of the input (data/augment.h)
//                 histocnn.stain_target  Macenko target (data/stain.h), when the
//                                     model was trained on stain-normalised images
//                 histocnn.classes    JSON: the label scheme (data/labels.h):
//                                     {"labels", "column", "classes": [names in
//                                     label order], "malignant": [bool per class],
//                                     absent without a benign/malignant view};
//                                     absent in older files: glas
//                 histocnn.trained    JSON: how it was trained (data selection, fold,
//                                     crops, seed, batch, Adam, augmentation,
//                                     histocnn version and git revision) and
//                                     "calibration": the temperature fitted on
//                                     the validation images (train/temperature.h)
// checkpoint:   a model file plus Adam's moments (optimizer.m.<name>,
//               optimizer.v.<name>) and histocnn.state, a JSON object with the
//               step, epoch and history, so `train --resume` continues exactly.
// ensemble file: several models trained alike with other seeds (`train
//               --ensemble N`): each member's tensors under members.K.<name>
//               (K from 0, the names a PyTorch nn.ModuleList `members` gives),
//               the shared metadata once, and histocnn.ensemble, a JSON array
//               of every member's histocnn.trained. Members share the spec,
//               input, crop, normalisation and stain target (they saw the same
//               crops), so one set of examples serves them all.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/labels.h"
#include "data/stain.h"
#include "nn/params.h"
#include "nn/spec.h"
#include "train/temperature.h"

namespace histocnn {

struct ModelFile {
  ModelSpec spec;
  int width = 0, height = 0;
  std::string crop;  // "WxH" or "whole"
  // Microns of tissue per network pixel (histocnn.mpp "X,Y": the training
  // images' microns per pixel times crop / input); 0 when not recorded.
  double mpp_x = 0, mpp_y = 0;
  Normalization normalization;              // histocnn.normalize (identity when absent)
  LabelScheme labels;                       // histocnn.classes (glas when absent)
  std::optional<StainMatrix> stain_target;  // histocnn.stain_target
  // How images are normalised to stain_target: trained.stain_normalize
  // (Macenko's estimate without the residual where a model does not say;
  // any other value is refused when the file is read). Without a target the
  // default recipe, which nothing applies.
  StainRecipe stain_recipe() const;
  // How eval, predict and slide temper its probabilities
  // (trained.calibration: "temperature", and with "method": "grouped" the
  // "within" fit's; the identity when none was fitted).
  Tempering tempering() const;
  Parameters params;
  Buffers buffers;  // batch-norm running statistics (empty without batch norm)
  nlohmann::json trained = nlohmann::json::object();  // histocnn.trained ({} when absent)
  // Only in checkpoints:
  bool has_optimizer = false;
  Parameters m, v;
  nlohmann::json state;  // {"step":..,"epoch":..,"history":[...]}
};

void save_model_file(const std::string& path, const ModelFile& file);
// Loads and validates against the spec's shapes; errors name the file. An
// ensemble file is refused (the caller needs one model).
ModelFile load_model_file(const std::string& path);

// What makes two models answer differently: "classes" (another label
// scheme), or read an image differently: "network", "input size",
// "crop", "physical scale", "input normalisation" or "stain normalisation"; "" when they read it
// alike (then one set of examples serves both).
std::string input_difference(const ModelFile& a, const ModelFile& b);

// Requires: at least two members agreeing on spec, input, crop, normalisation
// and stain target (checked; the error names the first that differs).
void save_ensemble_file(const std::string& path, const std::vector<ModelFile>& members);
// Each model's tempering(), in order (for EvalOptions / ScoringOptions).
std::vector<Tempering> temperings_of(const std::vector<ModelFile>& models);

// A model file (or checkpoint) as one member, an ensemble file as its members.
std::vector<ModelFile> load_models(const std::string& path);

// The same from a parsed safetensors file (`path` names it in errors): every
// metadata field and tensor checked against the spec before it is used.
struct SafetensorsFile;
std::vector<ModelFile> models_from(const SafetensorsFile& in, const std::string& path);
ModelFile model_from(const SafetensorsFile& in, const std::string& path);

}  // namespace histocnn
