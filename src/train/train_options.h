// Everything a training run is told (the `train` command's flags, as
// values): the data selection, the network and input, the step's device,
// memory and precision, the recipe (crops, augmentation, Adam, schedule),
// model selection, ensembles, the output folder and resume.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/augment.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "memory/memory_config.h"
#include "nn/adam.h"
#include "nn/spec.h"
#include "train/schedule.h"

namespace histocnn {

struct DataSelection {
  std::string folder;
  std::string split = "train";  // which names to use ("" / "all" = every row)
  int folds = 5;                // patient-grouped folds; 0 = no validation fold
  int fold = 0;                 // the validation fold
  std::string val_split;        // alternatively: validate on another split (e.g. testA)
  uint64_t fold_seed = 1;
  std::string labels = "glas";    // --labels: the label scheme (data/labels.h)
  std::string malignant_classes;  // --malignant-classes (class folders; "" = by name)
};

struct TrainOptions {
  DataSelection data;
  ModelSpec spec = default_model_spec();
  int width = 64, height = 64;
  int batch = 50;
  int epochs = 10;
  int threads = 0;  // 0 = all cores
  std::string device = "cpu";
  MemoryFlags memory;          // --allocator / --gpu-mem-pool (every device)
  std::string memory_limit;    // --gpu-mem-limit, e.g. "4GB" ("" = none)
  std::string allocation_log;  // --allocation-log FILE
  std::string precision = "fp32";
  bool flush_denormals = true;  // --denormals flush|keep (CPU; core/float_mode.h)
  bool winograd = true;         // --cpu-conv winograd|direct (StepOptions::cpu_winograd)
  bool cudnn_benchmark = false, cuda_graphs = false, cudnn_graph = false;
  bool channels_last = false;   // --channels-last (StepOptions::channels_last)
  bool profile_layers = false;  // per-layer forward/backward seconds in metrics.json (CPU)
  bool selftest = true;         // --device cuda: the quick self-test before training
  uint64_t seed = 1;
  CropOptions crops;
  int val_crops_per_image = 8;
  AugmentOptions augment;
  bool normalize = true;  // per-channel standardisation (false: the paper's 1/255 only)
  // Microns per pixel of the training images (GlaS: 20x objective, 0.62005;
  // the synthetic data is drawn at the same scale); recorded in the model as
  // the microns per network pixel, the scale `slide` reads tiles at.
  double image_mpp = 0.62005;
  std::string stain_normalize = "none";  // none | macenko (target from the training images)
  AdamConfig adam;
  // The loss's target (nn/elementwise.h): --label-smoothing epsilon, spread
  // over every class or (--smooth-to neighbours) the neighbouring grades.
  elementwise::LabelSmoothing label_smoothing;
  LrSchedule schedule;
  // Model selection on the validation images: none, or the metric whose best
  // epoch is kept as model.best.safetensors (image_auc, image_accuracy,
  // image_balanced_accuracy, crop_accuracy). early_stop > 0 ends the run after
  // that many epochs without improvement.
  std::string select_by = "none";
  std::string preset = "paper";  // recorded only: the preset's values arrive as the fields
  bool eval_tta = false;         // eval/predict defaults recorded in the model
  // Fit a temperature on the validation crops after each validation
  // (train/temperature.h); eval, predict and slide apply it.
  bool calibrate = true;
  int eval_crops = 8;
  int early_stop = 0;
  // Members of a deep ensemble (train/ensemble.h): with N > 1, N networks
  // trained alike with seeds seed, seed+1, ... (run_training trains one).
  int ensemble = 1;
  std::string output;  // folder for checkpoint, model, metrics
  bool resume = false;
  // checkpoint.safetensors after every epoch; without (--no-checkpoint, the
  // study's timing runs: 26 MB a run at 200 px) the run cannot be resumed.
  bool checkpoints = true;
  bool force_resume = false;    // resume even where settings differ from the checkpoint's
  bool force = false;           // start over in a folder that holds a run (replacing it)
  std::string init;             // starting weights
  bool progress = false;        // progress bar (on a terminal)
  std::string export_examples;  // write the training examples here and stop (for other engines)
  std::function<void(const std::string&)> log = nullptr;  // one line per call
  // Data parallelism (mpirun): the processes training together; null = one.
  // --batch stays the global batch; rank 0 alone logs and writes files.
  Communicator* comm = nullptr;
};

}  // namespace histocnn
