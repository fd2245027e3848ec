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
  int64_t column = 0, row = 0;    // in the grid
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

// A slide's stains mapped to the model's (data/stain.h): the source
// is estimated once per slide, as `predict` does once per image.
struct StainMapping {
  StainMatrix source, target;
  bool keep_residual = false;
};

// Tiles are read in groups: the tissue tiles of one grid row within one group
// of tiles_per_read(grid) columns come from one region read (first to last
// tile of the group in `tiles`, whichever of them a batch holds), because
// OpenSlide spends ~250 us per read whatever its size against ~10 ns per
// pixel. The region does not depend on the batch, so a tile scores the same
// in any batch (a resumed run equals an uninterrupted one).
int tiles_per_read(const TileGrid& grid);

// tiles[first, first + count) as the network sees them: net_width x
// net_height RGB each, stain normalised (when `stains`) at the resolution
// they were read, then area-resized.
std::vector<Image> read_tiles(const Slide& slide, const TileGrid& grid,
                              const std::vector<Tile>& tiles, size_t first, size_t count,
                              const StainMapping* stains = nullptr);

// The raw pixels of up to `samples` tiles spread evenly over `tiles`, at the
// resolution they are read (to estimate a slide's stains from).
std::vector<uint8_t> sample_tile_pixels(const Slide& slide, const TileGrid& grid,
                                        const std::vector<Tile>& tiles, int samples);

}  // namespace histocnn
