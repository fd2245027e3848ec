// Writing whole-slide images: a pyramidal, tiled, JPEG-compressed TIFF from
// a function that paints level-0 strips, in one of two layouts:
//   generic  what OpenSlide calls generic-tiff (and QuPath and libvips read):
//            one directory per level, each half the size of the one before,
//            down to at most 512 pixels a side, YCbCr JPEG tiles,
//            resolution tags in pixels per centimetre;
//   aperio   an Aperio .svs as the vendor's interchange note describes it:
//            the baseline level, then a stripped thumbnail (at most 1024
//            pixels a side), then levels each a quarter the size of the one
//            before, RGB JPEG tiles, every directory described as "Aperio
//            Image Library ..." with the level-0 "|AppMag = M|MPP = X" that
//            OpenSlide reads the scale from;
//   ome      an OME-TIFF as Bio-Formats and QuPath write a pyramid: level 0
//            in the main chain with OME-XML (its PhysicalSizeX/Y, the only
//            record of the scale: no resolution tags) in its description,
//            the reduced levels (halvings, as generic) in its SubIFDs, which
//            OpenSlide 3.4 does not read (data/tiff_slide.h does).
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

enum class SlideLayout { generic, aperio, ome };

struct SlideWriterOptions {
  double mpp = 0.62005;  // microns per level-0 pixel (GlaS's 20x scanner)
  int quality = 85;      // JPEG
  int tile = 256;        // tile side, a multiple of 16
  SlideLayout layout = SlideLayout::generic;
};

void write_pyramidal_tiff(const std::string& path, int64_t width, int64_t height,
                          const StripPainter& paint, const SlideWriterOptions& options = {});

}  // namespace histocnn
