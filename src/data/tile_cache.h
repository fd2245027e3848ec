// What the tiled slide readers share (data/tiff_slide.h, data/dicom_slide.h):
// a cache of decoded tiles, least recently used dropped first, and the copy
// of a region out of a level's tiles.
//
// Contract: TileCache is thread-safe; a tile handed out stays valid while
// its holder keeps the shared pointer, even after the cache dropped it.
// copy_from_tiles asks for each tile the region touches once, in row-major
// order, and paints white where the region leaves the level or where
// tile_at returns nullptr (a tile the file does not have: glass).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "data/image.h"

namespace histocnn {

using DecodedTile = std::vector<uint8_t>;  // tile_w x tile_h RGB

class TileCache {
 public:
  explicit TileCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}
  std::shared_ptr<const DecodedTile> find(uint64_t key);
  void put(uint64_t key, std::shared_ptr<const DecodedTile> tile);

  // A cache key for tile (tx, ty) of `level`: levels < 256, tiles < 2^28 a side.
  static uint64_t key(int level, int64_t tx, int64_t ty) {
    return (uint64_t(level) << 56) | (uint64_t(ty) << 28) | uint64_t(tx);
  }

 private:
  std::mutex mutex_;
  size_t capacity_, bytes_ = 0;
  std::list<uint64_t> order_;  // most recent first
  std::unordered_map<uint64_t,
                     std::pair<std::shared_ptr<const DecodedTile>, std::list<uint64_t>::iterator>>
      entries_;
};

// A level cut into tiles of tile_w x tile_h (the last row and column may
// reach past the level's edge; their pixels there are not used).
struct FrameGrid {
  int64_t width = 0, height = 0;
  int tile_w = 0, tile_h = 0;
};

using TileSource = std::function<std::shared_ptr<const DecodedTile>(int64_t tx, int64_t ty)>;

// The w x h pixels at (x0, y0), in the level's own pixels, of a level whose
// tiles tile_at decodes.
Image copy_from_tiles(const FrameGrid& grid, int64_t x0, int64_t y0, int w, int h,
                      const TileSource& tile_at);

}  // namespace histocnn
