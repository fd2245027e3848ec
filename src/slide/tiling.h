// The tiles of a slide at the model's physical scale.
//
// A model trained on crops of C image pixels resized to N network pixels, at
// m microns per image pixel, sees m*C/N microns per network pixel (its
// recorded histocnn.mpp). A slide at s microns per level-0 pixel is tiled in
// squares of N * mpp / s level-0 pixels, each read from the coarsest pyramid
// level still at least as fine as the network's pixels and resized (area
// averaging) to N x N — so a network pixel covers the same tissue as in
// training, whatever the scanner's objective.
#pragma once

#include <cstdint>
#include <vector>

#include "data/slide.h"
#include "data/stain.h"
#include "data/tissue.h"

namespace histocnn {

struct TileGrid {
  int net_width = 0, net_height = 0;       // network input
  double tile_width = 0, tile_height = 0;  // in level-0 pixels (not whole numbers)
  double tile_um_x = 0, tile_um_y = 0;     // tissue per tile, microns
  int level = 0;                           // pyramid level tiles are read from
  int read_width = 0, read_height = 0;     // pixels read at that level per tile
  int64_t columns = 0, rows = 0;           // the grid over the whole slide
};

struct Tile {
  int64_t x = 0, y = 0;           // top-left, level-0 pixels
  int64_t width = 0, height = 0;  // level-0 pixels
  float tissue = 0;               // fraction of the tile the tissue mask covers
};

// Requires: the slide's and the model's microns per pixel (> 0). Errors say
// which is missing and the flag that gives it.
TileGrid plan_tile_grid(const Slide& slide, double model_mpp_x, double model_mpp_y, int net_width,
                        int net_height);

// The grid's tiles with at least `min_tissue` of their area on tissue, row by
// row (the order results are written and resumed in). The mask is over a
// thumbnail of `downsample_x/y` level-0 pixels per mask pixel.
std::vector<Tile> tissue_tiles(const TileGrid& grid, const TissueMask& mask, double downsample_x,
                               double downsample_y, double min_tissue);

// A slide's stains mapped to the model's (Macenko, data/stain.h): the source
// is estimated once per slide, on its thumbnail, as `predict` does per image.
struct StainMapping {
  StainMatrix source, target;
  bool keep_residual = false;
};

// One tile as the network sees it: net_width x net_height RGB, stain
// normalised (when `stains`) at the resolution it was read, then resized.
Image read_tile(const Slide& slide, const TileGrid& grid, const Tile& tile,
                const StainMapping* stains = nullptr);

}  // namespace histocnn
