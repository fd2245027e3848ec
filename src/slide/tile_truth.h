// A slide's scored tiles against a pathologist's region annotations
// (data/annotations.h): a tile is malignant when at least half of it (8 x 8
// points) lies in malignant regions and outside the excluded ones. Its
// P(malignant) is then scored as any classifier's: AUC, and sensitivity,
// specificity and accuracy at 0.5. A cohort pools these per-tile truths
// (slide/tile_evaluation.h).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "data/annotations.h"
#include "slide/tile_scorer.h"
#include "slide/tiling.h"
#include "train/metrics.h"

namespace histocnn {

// Each scored tile's P(malignant) with its truth by the annotations (label
// 1: malignant). `annotations` null: a slide known to be benign without a
// file, so every tile is benign. Requires: no more scores than tiles, in order.
std::vector<Prediction> annotated_tiles(const Annotations* annotations,
                                        const std::vector<Tile>& tiles,
                                        const std::vector<TileScore>& scores);

// summary.json's "annotations" from annotated_tiles' result: {file, format,
// regions, excluded_regions, ignored_annotations, markers, tiles,
// malignant_tiles, auc, sensitivity, specificity, accuracy, confusion, truth}.
nlohmann::json annotation_summary(const Annotations* annotations,
                                  const std::vector<Prediction>& tiles);

}  // namespace histocnn
