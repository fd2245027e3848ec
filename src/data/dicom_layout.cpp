#include "data/dicom_layout.h"

#include <string>

#include "core/error.h"

namespace histocnn {
namespace {

void require_grid(const FrameGrid& grid) {
  require(grid.width > 0 && grid.height > 0 && grid.tile_w > 0 && grid.tile_h > 0,
          "a level of " + std::to_string(grid.width) + "x" + std::to_string(grid.height) +
              " pixels in tiles of " + std::to_string(grid.tile_w) + "x" +
              std::to_string(grid.tile_h));
  // 2^24 tiles is a 262144-pixel square slide in 64-pixel frames; a header
  // claiming more asks for gigabytes of frame tables.
  require(tiles_across(grid) * tiles_down(grid) <= (int64_t(1) << 24),
          "a level of " + std::to_string(tiles_across(grid) * tiles_down(grid)) +
              " tiles (at most 2^24 are read)");
}

}  // namespace

int64_t tiles_across(const FrameGrid& grid) {
  return (grid.width + grid.tile_w - 1) / grid.tile_w;
}
int64_t tiles_down(const FrameGrid& grid) {
  return (grid.height + grid.tile_h - 1) / grid.tile_h;
}

std::vector<int64_t> tiled_full_frames(const FrameGrid& grid, int64_t frames, int64_t first_frame) {
  require_grid(grid);
  require(frames > 0 && first_frame >= 0, "TILED_FULL with " + std::to_string(frames) +
                                              " frames from frame " + std::to_string(first_frame));
  const int64_t tiles = tiles_across(grid) * tiles_down(grid);
  std::vector<int64_t> frame_of_tile(size_t(tiles), kNoFrame);
  for (int64_t f = 0; f < frames && first_frame + f < tiles; ++f)
    frame_of_tile[size_t(first_frame + f)] = f;
  return frame_of_tile;
}

std::vector<int64_t> tiled_sparse_frames(const FrameGrid& grid,
                                         const std::vector<FramePosition>& positions) {
  require_grid(grid);
  const int64_t across = tiles_across(grid), down = tiles_down(grid);
  std::vector<int64_t> frame_of_tile(size_t(across * down), kNoFrame);
  for (size_t f = 0; f < positions.size(); ++f) {
    const int64_t x = positions[f].column - 1, y = positions[f].row - 1;
    const std::string where = "frame " + std::to_string(f + 1) + " at column " +
                              std::to_string(positions[f].column) + ", row " +
                              std::to_string(positions[f].row);
    require(x >= 0 && y >= 0 && x < grid.width && y < grid.height, where + ": outside the level");
    require(x % grid.tile_w == 0 && y % grid.tile_h == 0,
            where + ": not on the grid of " + std::to_string(grid.tile_w) + "x" +
                std::to_string(grid.tile_h) + " tiles");
    int64_t& slot = frame_of_tile[size_t((y / grid.tile_h) * across + x / grid.tile_w)];
    if (slot == kNoFrame) slot = int64_t(f);
  }
  return frame_of_tile;
}

std::vector<FragmentRange> fragments_of_frames(const std::vector<uint64_t>& fragment_lengths,
                                               const std::vector<uint64_t>& frame_offsets,
                                               int64_t frames) {
  const size_t n = fragment_lengths.size();
  require(frames > 0 && n > 0,
          std::to_string(n) + " fragments for " + std::to_string(frames) + " frames");
  std::vector<FragmentRange> ranges;
  if (int64_t(n) == frames) {
    for (size_t i = 0; i < n; ++i) ranges.push_back({i, 1});
    return ranges;
  }
  if (frames == 1) return {{0, n}};
  require(int64_t(frame_offsets.size()) == frames,
          std::to_string(n) + " fragments for " + std::to_string(frames) +
              " frames and no offset table to say which frame each belongs to");
  // Each item is an 8-byte header (tag, length) and its value.
  std::vector<uint64_t> item_offset(n + 1, 0);
  for (size_t i = 0; i < n; ++i) item_offset[i + 1] = item_offset[i] + 8 + fragment_lengths[i];
  size_t item = 0;
  for (int64_t f = 0; f < frames; ++f) {
    while (item < n && item_offset[item] < frame_offsets[size_t(f)]) ++item;
    require(item < n && item_offset[item] == frame_offsets[size_t(f)],
            "the offset table's frame " + std::to_string(f + 1) + " (byte " +
                std::to_string(frame_offsets[size_t(f)]) + ") starts at no fragment");
    if (f > 0) ranges.back().count = item - ranges.back().first;
    require(f == 0 || ranges.back().count > 0,
            "the offset table repeats frame " + std::to_string(f) + "'s offset");
    ranges.push_back({item, 0});
  }
  ranges.back().count = n - ranges.back().first;
  require(ranges.front().first == 0, "the offset table's first frame is not the first fragment");
  return ranges;
}

}  // namespace histocnn
