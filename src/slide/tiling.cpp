#include "slide/tiling.h"

#include <cmath>

#include "core/error.h"

namespace histocnn {

TileGrid plan_tile_grid(const Slide& slide, double model_mpp_x, double model_mpp_y, int net_width,
                        int net_height) {
  require(slide.mpp_x() > 0 && slide.mpp_y() > 0,
          slide.path() +
              ": the slide does not record its microns per pixel; give --mpp "
              "(e.g. 0.25 at 40x, 0.5 at 20x)");
  require(model_mpp_x > 0 && model_mpp_y > 0,
          "the model does not record the microns per pixel it was trained at; give --mpp-model "
          "(microns per network pixel: the training images' microns per pixel x crop / input)");
  require(net_width > 0 && net_height > 0, "network input must not be empty");
  TileGrid g;
  g.net_width = net_width;
  g.net_height = net_height;
  g.tile_width = net_width * model_mpp_x / slide.mpp_x();
  g.tile_height = net_height * model_mpp_y / slide.mpp_y();
  require(g.tile_width >= 1 && g.tile_height >= 1 && g.tile_width <= slide.width() * 1.0 &&
              g.tile_height <= slide.height() * 1.0,
          slide.path() + ": a tile of " + std::to_string(g.tile_width) + "x" +
              std::to_string(g.tile_height) + " slide pixels does not fit the slide's " +
              std::to_string(slide.width()) + "x" + std::to_string(slide.height()) +
              " (check --mpp and the model's scale)");
  g.tile_um_x = g.tile_width * slide.mpp_x();
  g.tile_um_y = g.tile_height * slide.mpp_y();
  const double per_net_pixel = std::min(g.tile_width / net_width, g.tile_height / net_height);
  g.level = slide.level_for_downsample(per_net_pixel);
  const double ds = slide.levels()[g.level].downsample;
  g.read_width = std::max(1, int(std::lround(g.tile_width / ds)));
  g.read_height = std::max(1, int(std::lround(g.tile_height / ds)));
  g.columns = int64_t(std::ceil(slide.width() / g.tile_width - 1e-9));
  g.rows = int64_t(std::ceil(slide.height() / g.tile_height - 1e-9));
  return g;
}

std::vector<Tile> tissue_tiles(const TileGrid& grid, const TissueMask& mask, double downsample_x,
                               double downsample_y, double min_tissue) {
  std::vector<Tile> tiles;
  for (int64_t r = 0; r < grid.rows; ++r)
    for (int64_t c = 0; c < grid.columns; ++c) {
      Tile t;
      t.x = std::llround(c * grid.tile_width);
      t.y = std::llround(r * grid.tile_height);
      t.width = std::llround((c + 1) * grid.tile_width) - t.x;
      t.height = std::llround((r + 1) * grid.tile_height) - t.y;
      // The mask's share over the whole tile (outside the slide is glass).
      const double inside =
          mask.fraction(t.x / downsample_x, t.y / downsample_y, (t.x + t.width) / downsample_x,
                        (t.y + t.height) / downsample_y);
      const double w = std::min<double>(t.width, mask.width * downsample_x - t.x);
      const double h = std::min<double>(t.height, mask.height * downsample_y - t.y);
      t.tissue = float(inside * std::max(0.0, w) * std::max(0.0, h) / (double(t.width) * t.height));
      if (t.tissue > 0 && t.tissue >= min_tissue) tiles.push_back(t);
    }
  return tiles;
}

Image read_tile(const Slide& slide, const TileGrid& grid, const Tile& tile,
                const StainMapping* stains) {
  Image read = slide.read_region(grid.level, tile.x, tile.y, grid.read_width, grid.read_height);
  if (stains) read = normalize_stains(read, stains->source, stains->target, stains->keep_residual);
  return resize_area(read, grid.net_width, grid.net_height);
}

}  // namespace histocnn
