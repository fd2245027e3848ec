// Where a DICOM whole-slide image keeps each tile: plain functions of the
// numbers in the file's header, kept apart from the parsing (dcmtk) so that
// tests can give them any numbers (data/dicom_slide.h reads the files).
//
// DICOM (PS3.3 C.8.12.4, "VL Whole Slide Microscopy Image") stores a level as
// frames of Columns x Rows pixels, either
//   TILED_FULL    every tile, row by row, left to right within a row (then
//                 further focal planes and optical paths, which are not read
//                 here: the first plane is the slide), or
//   TILED_SPARSE  frames in any order, each with its position in the level
//                 (Plane Position (Slide), 1-based), tiles without a frame
//                 being glass.
// A level may be split over several files (a concatenation), each holding
// frames from its Concatenation Frame Offset Number on.
//
// Contract: every function throws a one-line reason (no file name: the
// caller adds it) when the numbers cannot describe a readable level.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "data/tile_cache.h"

namespace histocnn {

constexpr int64_t kNoFrame = -1;

// Tiles across and down a level.
int64_t tiles_across(const FrameGrid& grid);
int64_t tiles_down(const FrameGrid& grid);

// frame_of_tile[ty * across + tx]: the frame (within this file) holding the
// tile, or kNoFrame. `first_frame` is the file's Concatenation Frame Offset
// Number (0 when the level is one file).
std::vector<int64_t> tiled_full_frames(const FrameGrid& grid, int64_t frames, int64_t first_frame);

// The same from each frame's 1-based column and row position in the level.
// A tile given by several frames keeps the first (further focal planes or
// optical paths of the same place).
struct FramePosition {
  int64_t column = 1, row = 1;
};
std::vector<int64_t> tiled_sparse_frames(const FrameGrid& grid,
                                         const std::vector<FramePosition>& positions);

// Which items of an encapsulated Pixel Data (after the offset table item)
// hold each frame. One fragment per frame is the common case; otherwise the
// offset table (byte offset of each frame's first item, counted from the
// first fragment item; empty when the file leaves it empty) says where
// frames start, and a single frame takes every fragment.
struct FragmentRange {
  size_t first = 0, count = 0;
};
std::vector<FragmentRange> fragments_of_frames(const std::vector<uint64_t>& fragment_lengths,
                                               const std::vector<uint64_t>& frame_offsets,
                                               int64_t frames);

}  // namespace histocnn
