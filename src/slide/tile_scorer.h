// Scoring a slide's tiles: a pool of reader threads reads, stain-normalises,
// resizes, measures the focus of and converts tiles into batches ahead of the
// device (core/read_ahead.h), which scores them in order with every member of
// the model (and every dihedral transform with test-time augmentation).
//
// Memory is bounded by the batch and the thread count, never by the slide:
// at most readers + 1 batches of network input exist at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "backends/backend.h"
#include "data/augment.h"
#include "slide/tiling.h"
#include "train/temperature.h"

namespace histocnn {

struct TileScore {
  double p_malignant = 0;  // mean over members (calibrated) and transforms
  double member_sd = 0;    // spread of the members' P (0 for one model)
  float focus = 0;         // sharpness of the tile as the network saw it (data/focus.h)
  // A model of more than two classes (grades): each class's probability,
  // calibrated, mean over members and transforms; empty otherwise.
  std::vector<float> classes;
  // With ScoringOptions::features: MemberPredictor::features of the tile.
  std::vector<float> features;
};

struct ScoringOptions {
  int batch = 64;    // tiles per device call (the steps' compiled batch or less)
  int readers = 2;   // threads reading tiles
  bool tta = false;  // average over the 8 (4) dihedral transforms
  Normalization normalization;
  const StainMapping* stains = nullptr;
  // Each member's tempering (train/temperature.h); empty: none for all.
  std::vector<Tempering> temperings;
  // Per class of the models: malignant or not (P(malignant) sums those);
  // empty: two classes, benign and malignant.
  std::vector<bool> malignant;
  bool features = false;  // each TileScore's features too (slide/tile_features.h)
};

struct ScoringTimes {
  double wall_s = 0;
  double read_s = 0;   // reader threads' busy time, summed over threads
  double infer_s = 0;  // the device's busy time
  double wait_s = 0;   // the device waiting for tiles
  int64_t tiles = 0;
};

// Called in tile order for every scored batch: the index of its first tile
// and one score per tile.
using ScoredBatchSink = std::function<void(size_t first, const std::vector<TileScore>&)>;

// Scores tiles[first, end). Stops between batches once *stop is set (Ctrl-C);
// an error in a reader (a corrupt slide region) is raised here after the
// readers are joined. Requires: members share input size and batch >=
// options.batch.
ScoringTimes score_tiles(const Slide& slide, const TileGrid& grid, const std::vector<Tile>& tiles,
                         size_t first, const std::vector<TrainingStep*>& members,
                         const ScoringOptions& options, const ScoredBatchSink& sink,
                         const std::atomic<bool>* stop = nullptr);

}  // namespace histocnn
