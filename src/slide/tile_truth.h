// A slide's scored tiles against a pathologist's region annotations
// (data/annotations.h): a tile is malignant when at least half of it (8 x 8
// points) lies in malignant regions. Its P(malignant) is then scored as any
// classifier's: AUC, and sensitivity, specificity and accuracy at 0.5.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "data/annotations.h"
#include "slide/tile_scorer.h"
#include "slide/tiling.h"

namespace histocnn {

// summary.json's "annotations": {file, regions, ignored_annotations, tiles,
// malignant_tiles, auc, sensitivity, specificity, accuracy, confusion,
// truth}. `annotations` null: a slide known to be benign without a file, so
// every tile is benign. Requires: one score per tile, in order.
nlohmann::json tiles_against_annotations(const Annotations* annotations,
                                         const std::vector<Tile>& tiles,
                                         const std::vector<TileScore>& scores);

}  // namespace histocnn
