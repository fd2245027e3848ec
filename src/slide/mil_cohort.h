// Slide-level models from slide labels alone: gated attention MIL
// (nn/attention_mil.h) over the tile features `histocnn slide --features`
// wrote (slide/tile_features.h), trained and judged by `histocnn mil`.
//
//   cohort/<slide>/features.safetensors   one bag per slide
//   labels                                data/slide_labels.h (rows, or TCGA barcodes)
//
// Cross-validation is patient-grouped and stratified (data/dataset.h's
// patient_folds: a patient's slides are held out together); every slide gets
// the P of the fold model that never saw it, and the cohort's slide-level
// AUC of that P is reported beside the fixed scores of the same slides (max,
// top-mean, mean, area of their tiles' P; slide/slide_evaluation.h), with
// intervals from the same patient bootstrap. The final model is trained on
// every slide.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/slide_labels.h"
#include "nn/attention_mil.h"
#include "slide/tile_features.h"

namespace histocnn {

struct MilBag {
  std::string slide;       // its name: the folder under the cohort
  std::string folder;      // that folder
  std::string path;        // the slide file it was scored from (features metadata)
  std::string patient;     // "" when the labels name none
  int label = -1;          // 0 benign, 1 malignant; -1 unlabelled (apply only)
  TileFeatures tiles;      // tiles under --min-focus already dropped
  nlohmann::json summary;  // its summary.json (null when absent)
};

// Every <cohort>/<slide>/features.safetensors, sorted by slide name, each
// with its summary.json, unlabelled. Tiles with focus below min_focus are
// left out. Throws, naming the folder, when no slide has features or their
// widths differ.
std::vector<MilBag> read_mil_cohort(const std::string& cohort, double min_focus = 0);
// One slide folder's features.safetensors as a bag, unlabelled, without its
// summary (read_mil_cohort adds it; `slide --mil` has it in hand).
MilBag read_mil_bag(const std::string& folder, double min_focus = 0);
// Each bag's label and patient: the row naming its slide file (or its
// name); a bag without one is an error naming it and the labels file.
void label_mil_bags(std::vector<MilBag>& bags, const SlideLabels& labels);

struct MilOptions {
  int attention = 32;  // L
  int epochs = 40;
  float learning_rate = 2e-4f;
  float weight_decay = 1e-4f;  // AdamW, decoupled
  int max_tiles = 512;         // tiles drawn per slide per step (all when fewer)
  uint64_t seed = 1;
  int threads = 1;  // models trained at once by cross_validate_mil (one thread each)
};

// One bag per step, in a shuffled order each epoch (Adam). Deterministic for
// options.seed. Requires: bags labelled, of one width, with tiles.
AttentionMil train_attention_mil(const std::vector<const MilBag*>& bags, const MilOptions& options);

struct MilCrossValidation {
  std::vector<int> fold;                       // per bag
  std::vector<double> p;                       // per bag: the held-out fold model's P(malignant)
  std::vector<std::vector<double>> attention;  // per bag, per tile, from the same model
  AttentionMil final_model;                    // trained on every bag
};
// The `folds` models and the final one are independent jobs, trained
// options.threads at a time; each is a function of the seed alone, so the
// result is the same for any thread count. Requires: at least `folds`
// patients (or slides), both labels present.
MilCrossValidation cross_validate_mil(const std::vector<MilBag>& bags, int folds,
                                      const MilOptions& options);

// The model file: named tensors (attention_V [L, D], attention_bV,
// attention_U, attention_bU, attention_w, classifier_weight [1, D],
// classifier_bias, feature_mean, feature_inv_sd) and metadata (format
// "histocnn.attention_mil/1", `trained` as JSON).
void save_attention_mil(const std::string& path, const AttentionMil& model,
                        const nlohmann::json& trained);
AttentionMil load_attention_mil(const std::string& path, nlohmann::json* trained = nullptr);

}  // namespace histocnn
