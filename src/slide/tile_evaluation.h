// A cohort's tiles pooled against the pathologists' region annotations
// (slide/tile_truth.h gives each tile's truth): one tile-level AUC, and the
// sensitivity and specificity at a threshold, for every annotated slide
// together (and the slides known benign without a file). Their 95% intervals
// come from a bootstrap over patients when the slide labels name them, else
// over slides: tiles of one slide are far from independent, so drawing tiles
// would make the intervals far too narrow.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/bootstrap.h"
#include "train/metrics.h"

namespace histocnn {

struct AnnotatedSlide {
  std::string slide;
  std::string patient;            // "": the slide is its own bootstrap unit
  std::vector<Prediction> tiles;  // each tile's P(malignant) and annotated truth
};

struct TileEvaluationOptions {
  double threshold = 0.5;
  int replicates = 2000;
  uint64_t seed = 1;
};

struct TileEvaluation {
  TileEvaluationOptions options;
  int slides = 0;
  Metrics metrics;  // over every pooled tile
  Interval auc, sensitivity, specificity;
  std::string unit;  // "patient" or "slide"
  int units = 0;
  nlohmann::json per_slide;  // [{slide, patient, tiles, malignant_tiles, auc}]
  nlohmann::json to_json() const;
  // One line: tiles, the AUC with its interval, sensitivity and specificity.
  std::string headline() const;
};

// The AUC (Mann-Whitney, ties counted half) of predictions sorted by
// ascending P, tile i weighing unit_weight[unit[i]]; NaN without weight on
// both classes. Equals compute_metrics' AUC when every weight is 1.
double weighted_auc(const std::vector<Prediction>& ascending, const std::vector<int>& unit,
                    const std::vector<double>& unit_weight);

// Requires: 0 <= threshold <= 1. Deterministic for a seed. The tiles are
// sorted once; each replicate is one pass over them in that order.
TileEvaluation evaluate_tiles(const std::vector<AnnotatedSlide>& slides,
                              const TileEvaluationOptions& options);

// <folder>/tile-roc.{dat,png,svg} (the pooled tiles' ROC curve) and then
// <folder>/tile-evaluation.json, so that a JSON is never left beside a stale
// figure. Throws when gnuplot fails; where it is not installed, the scripts alone (render_gnuplot).
void write_tile_evaluation(const TileEvaluation& evaluation,
                           const std::vector<AnnotatedSlide>& slides, const std::string& folder);

}  // namespace histocnn
