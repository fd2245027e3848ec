// Training tiles from whole slides: `histocnn tiles` cuts a slide's tissue
// into square tiles at a chosen physical scale and writes those whose truth
// is known as a GlaS-layout dataset (one image per tile and Grade.csv), which
// `histocnn train --data` reads like the GlaS release.
//
// A tile's truth comes from the pathologists' region annotations
// (data/annotations.h), as the share of it (8 x 8 points) inside malignant
// regions: malignant at or above `purity`, benign at or below 1 - purity, and
// left out in between (a border tile would teach the network both classes).
// A slide labelled benign without an annotation file has every tile benign.
// Each slide contributes at most `max_per_class` tiles of each class, drawn
// at random but reproducibly (the slide's name seeds the draw), so one large
// slide cannot swamp the others. Every tile of a slide carries its patient
// (from --slide-labels, else the slide's name): train's patient-grouped folds
// then never split a slide between training and validation.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/annotations.h"
#include "data/grade_csv.h"
#include "slide/slide_run.h"

namespace histocnn {

struct TileExportOptions {
  double mpp = 0.62005;     // microns per pixel of the written tiles (GlaS's 20x)
  int size = 512;           // their side, pixels
  double purity = 0.9;      // see above; in (0.5, 1]
  int max_per_class = 200;  // per slide; 0: every tile
  std::string prefix = "train";
  std::string format = "png";  // png, bmp or jpg
  uint64_t seed = 1;
};

// What is known of a slide's tiles: its annotations, or that it is benign.
struct SlideTruth {
  const Annotations* annotations = nullptr;  // null and benign: every tile benign
  bool benign = false;
  std::string patient;  // Grade.csv's patient ID
};

struct ExportedSlide {
  std::string slide, patient;
  int tissue_tiles = 0;                       // on tissue at the export's scale
  int malignant = 0, benign = 0, border = 0;  // of them, by their truth
  int written_malignant = 0, written_benign = 0;
  double pen_ink_mm2 = 0;      // pen strokes left out of the tissue
  std::vector<GradeRow> rows;  // the tiles written, as Grade.csv lists them
  nlohmann::json to_json() const;
};

// 1 malignant, 0 benign, -1 a border tile left out.
int tile_truth_class(double malignant_fraction, double purity);

// Up to n of `indices` drawn at random for `seed`, in their original order;
// all of them when n is 0 or at least their number.
std::vector<size_t> draw_in_order(const std::vector<size_t>& indices, int n, uint64_t seed);

// Whether a tile name may hold the character: letters, digits, '.', '-'
// and '_' (tile names go into Grade.csv and file names).
bool tile_name_char(char c);
// The slide's file name without extension, every other character replaced
// by '-'.
std::string tile_name_stem(const std::string& slide_path);

// Requires: options valid (purity in (0.5, 1], size >= 16, mpp > 0). Writes
// the chosen tiles into `folder` as <prefix>_<stem>_<column>_<row>.<format>,
// atomically, and returns their rows; Grade.csv is the caller's (all slides
// together). `reading`: the slide's mpp, tissue threshold and minimum tissue.
ExportedSlide export_slide_tiles(const std::string& slide_path, const SlideTruth& truth,
                                 const TileExportOptions& options, const SlideOptions& reading,
                                 const std::string& folder);

}  // namespace histocnn
