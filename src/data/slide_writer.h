// Writing whole-slide images: a pyramidal, tiled, JPEG-compressed TIFF (the
// generic layout OpenSlide, QuPath and libvips read: one directory per level,
// each half the size of the one before, down to at most 512 pixels a side,
// resolution tags in pixels per centimetre) from a function that paints
// level-0 strips.
//
// Memory: one strip of 512 rows of the widest level, whatever the slide's
// size; the reduced levels wait in raw temporaries beside the output (a
// third of level 0's raw size in all), removed at the end. The file appears
// under its name only when complete (written as <path>.partial, renamed).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "data/image.h"

namespace histocnn {

// Paints the level-0 region of `width` x `height` pixels at (x, y).
using StripPainter = std::function<Image(int64_t x, int64_t y, int width, int height)>;

struct SlideWriterOptions {
  double mpp = 0.62005;  // microns per level-0 pixel (GlaS's 20x scanner)
  int quality = 85;      // JPEG
  int tile = 256;        // tile side, a multiple of 16
};

void write_pyramidal_tiff(const std::string& path, int64_t width, int64_t height,
                          const StripPainter& paint, const SlideWriterOptions& options = {});

}  // namespace histocnn
