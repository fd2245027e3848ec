#include "slide/tiling.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

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
  if (!(g.tile_width >= 1 && g.tile_height >= 1 && g.tile_width <= slide.width() * 1.0 &&
        g.tile_height <= slide.height() * 1.0)) {
    char tile[64];
    std::snprintf(tile, sizeof tile, "%.1fx%.1f", g.tile_width, g.tile_height);
    fail(slide.path() + ": a tile of " + tile + " slide pixels does not fit the slide's " +
         std::to_string(slide.width()) + "x" + std::to_string(slide.height()) +
         " (check --mpp and the model's scale)");
  }
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
      t.column = c;
      t.row = r;
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

namespace {
// The level-0 coordinate of the level pixel at or before level-0 coordinate x.
int64_t level0_of_level_pixel(int64_t x, double downsample) {
  return std::llround(std::floor(x / downsample) * downsample);
}
}  // namespace

int tiles_per_read(const TileGrid& grid) {
  return std::clamp(1024 / std::max(1, grid.read_width), 1, 16);
}

std::vector<Image> read_tiles(const Slide& slide, const TileGrid& grid,
                              const std::vector<Tile>& tiles, size_t first, size_t count,
                              const StainMapping* stains) {
  require(first + count <= tiles.size(), "read_tiles: past the last tile");
  std::vector<Image> out(count);
  const int per_read = tiles_per_read(grid);
  const double ds = slide.levels()[grid.level].downsample;
  auto same_group = [&](size_t a, size_t b) {
    return tiles[a].row == tiles[b].row && tiles[a].column / per_read == tiles[b].column / per_read;
  };
  for (size_t i = first; i < first + count;) {
    // The group's tiles in the whole list (not just this batch) fix the region.
    size_t lo = i, hi = i + 1;
    while (lo > 0 && same_group(lo - 1, i)) --lo;
    while (hi < tiles.size() && same_group(hi, i)) ++hi;
    // The region starts on a whole pixel of the level: OpenSlide paints a
    // fractional start through cairo's bilinear filter, far slower (and blurred).
    const int64_t x0 = level0_of_level_pixel(tiles[lo].x, ds);
    const int64_t y0 = level0_of_level_pixel(tiles[i].y, ds);
    const int width = int(std::ceil((tiles[hi - 1].x - x0) / ds)) + grid.read_width + 1;
    const int dy = int(std::llround((tiles[i].y - y0) / ds));
    Image region = slide.read_region(grid.level, x0, y0, width, grid.read_height + dy);
    if (stains)
      region = normalize_stains(region, stains->source, stains->target, stains->keep_residual);
    const size_t end = std::min(hi, first + count);
    for (size_t k = i; k < end; ++k) {
      const int dx = std::min(int(std::llround((tiles[k].x - x0) / ds)), width - grid.read_width);
      out[k - first] = resize_area(crop(region, dx, dy, grid.read_width, grid.read_height),
                                   grid.net_width, grid.net_height);
    }
    i = end;
  }
  return out;
}

std::vector<uint8_t> sample_tile_pixels(const Slide& slide, const TileGrid& grid,
                                        const std::vector<Tile>& tiles, int samples) {
  std::vector<uint8_t> rgb;
  const size_t n = std::min(tiles.size(), size_t(std::max(samples, 0)));
  for (size_t s = 0; s < n; ++s) {
    const Tile& t = tiles[s * tiles.size() / n];
    const Image read = slide.read_region(grid.level, t.x, t.y, grid.read_width, grid.read_height);
    rgb.insert(rgb.end(), read.rgb.begin(), read.rgb.end());
  }
  return rgb;
}

}  // namespace histocnn
