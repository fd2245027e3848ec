// What the slide-reader fuzz targets (fuzz_slide.cpp, fuzz_dicom.cpp) do
// with a slide they opened: read regions on every level where the tiling
// reads them (the corner, one straddling the right and bottom edges, one
// wholly outside) and a small thumbnail. Each must be w x h RGB pixels or a
// histocnn::Error; anything else traps.
#pragma once

#include <algorithm>
#include <cstdint>

#include "data/slide.h"

inline void read_checked(const histocnn::Slide& slide, int level, double x, double y, int w,
                         int h) {
  const auto clamp = [](double v) { return int64_t(std::clamp(v, -1e12, 1e12)); };
  const histocnn::Image region = slide.read_region(level, clamp(x), clamp(y), w, h);
  if (region.width != w || region.height != h || region.rgb.size() != size_t(w) * h * 3)
    __builtin_trap();
}

inline void read_everywhere(const histocnn::Slide& slide) {
  const auto& levels = slide.levels();
  for (int level = 0; level < int(levels.size()); ++level) {
    const double ds = levels[level].downsample;
    read_checked(slide, level, 0, 0, 64, 48);
    read_checked(slide, level, double(levels[level].width - 40) * ds,
                 double(levels[level].height - 24) * ds, 80, 64);
    read_checked(slide, level, double(levels[level].width + 8) * ds, 0, 16, 16);
  }
  const histocnn::Thumbnail thumbnail = histocnn::read_thumbnail(slide, 64);
  if (thumbnail.image.rgb.size() != size_t(thumbnail.image.width) * thumbnail.image.height * 3)
    __builtin_trap();
}
