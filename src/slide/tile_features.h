// A slide's tile features, for slide-level models (attention MIL, CLAM and
// the like) trained on top of a tile classifier: `histocnn slide --features`
// writes <slide>/features.safetensors, one row per row of tiles.csv, in its
// order:
//   features     F32 [N, D]  what the network's last dense layer reads, per tile
//                            (TrainingStep::predict_features; with --tta the
//                            mean over the transforms; an ensemble's members
//                            side by side, D = their widths summed)
//   coords       I64 [N, 4]  x, y, width, height of the tile, level-0 pixels
//   p_malignant  F32 [N]     the tile's calibrated P(malignant), as in tiles.csv
//   focus        F32 [N]     its sharpness (data/focus.h)
// and string metadata (kTileFeaturesFormat, the slide, models, widths,
// microns). PyTorch reads it with safetensors.torch.load_file.
//
// While a slide is scored its rows go to <slide>/features.partial (raw
// little-endian float32, D per tile), appended per batch *before* the batch's
// tiles.csv rows, tiles.csv's append being the resume point: the partial file
// never holds fewer whole rows than tiles.csv, so a resumed run keeps the
// first tiles.csv-many rows and continues. Once every tile is scored the
// safetensors file is written atomically and the partial file removed.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "slide/tile_scorer.h"
#include "slide/tiling.h"

namespace histocnn {

constexpr const char* kTileFeaturesFormat = "histocnn.tile_features/1";

class TileFeatureLog {
 public:
  // For a slide folder whose tiles.csv holds `scored` rows: keeps the
  // partial file's first `scored` rows (dropping an unconfirmed tail) or
  // starts it when scored is 0; a slide already finished (its safetensors
  // file holding `scored` rows and no partial file) is left alone.
  // Fails, naming the file and --restart, when the features of scored tiles
  // are missing (a run scored them without --features) or of another width.
  TileFeatureLog(const std::string& folder, int width, size_t scored);

  // ensures: one append of every tile's features (each `width` floats).
  void append(const std::vector<TileScore>& batch);

  // All `tiles` are scored (scores in the same order): writes
  // features.safetensors atomically with `metadata` added to the format's
  // own, then removes the partial file. Idempotent.
  void finish(const std::vector<Tile>& tiles, const std::vector<TileScore>& scores,
              const std::map<std::string, std::string>& metadata);

  const std::string& path() const { return final_; }

 private:
  std::string partial_, final_;
  int width_;
};

// The features of a finished slide (features.safetensors): checked against
// the format (names, dtypes, matching row counts, finite values). Errors
// name the file.
struct TileFeatures {
  int64_t rows = 0, width = 0;
  std::vector<float> features;  // rows x width
  std::vector<int64_t> coords;  // rows x 4
  std::vector<float> p_malignant, focus;
  std::map<std::string, std::string> metadata;
};
TileFeatures read_tile_features(const std::string& path);

}  // namespace histocnn
