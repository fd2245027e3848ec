#include "data/tile_cache.h"

#include <algorithm>
#include <cstring>

namespace histocnn {

std::shared_ptr<const DecodedTile> TileCache::find(uint64_t key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  order_.splice(order_.begin(), order_, it->second.second);
  return it->second.first;
}

void TileCache::put(uint64_t key, std::shared_ptr<const DecodedTile> tile) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.count(key) || tile->size() > capacity_) return;
  order_.push_front(key);
  bytes_ += tile->size();
  entries_.emplace(key, std::make_pair(std::move(tile), order_.begin()));
  while (bytes_ > capacity_) {
    auto last = entries_.find(order_.back());
    bytes_ -= last->second.first->size();
    entries_.erase(last);
    order_.pop_back();
  }
}

Image copy_from_tiles(const FrameGrid& grid, int64_t x0, int64_t y0, int w, int h,
                      const TileSource& tile_at) {
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.assign(size_t(w) * size_t(h) * 3, 255);
  const int64_t xb = std::max<int64_t>(x0, 0), xe = std::min<int64_t>(x0 + w, grid.width);
  const int64_t yb = std::max<int64_t>(y0, 0), ye = std::min<int64_t>(y0 + h, grid.height);
  if (xb >= xe || yb >= ye) return out;
  for (int64_t ty = yb / grid.tile_h; ty * grid.tile_h < ye; ++ty)
    for (int64_t tx = xb / grid.tile_w; tx * grid.tile_w < xe; ++tx) {
      const std::shared_ptr<const DecodedTile> tile = tile_at(tx, ty);
      if (!tile) continue;
      const int64_t tile_x = tx * grid.tile_w, tile_y = ty * grid.tile_h;
      const int64_t cx0 = std::max(xb, tile_x), cx1 = std::min(xe, tile_x + grid.tile_w);
      for (int64_t r = std::max(yb, tile_y); r < std::min(ye, tile_y + grid.tile_h); ++r)
        std::memcpy(out.row(int(r - y0)) + (cx0 - x0) * 3,
                    tile->data() + ((r - tile_y) * grid.tile_w + (cx0 - tile_x)) * 3,
                    size_t(cx1 - cx0) * 3);
    }
  return out;
}

}  // namespace histocnn
