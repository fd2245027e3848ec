// Pen ink on a slide's thumbnail: the red, green and blue marker strokes
// pathologists draw on the glass (circling a tumour, arrows, numbers).
// Ink is saturated, so the saturation threshold of data/tissue.h takes it
// for tissue, and a tile under a stroke is scored as if it were tissue —
// TCGA's diagnostic slides carry many.
//
// Method: the colour palette of IBM CODAIT's deep-histopath tutorial
// (python-wsi-preprocessing), read off pen strokes on TCGA slides and used
// as is by histolab: a pixel is red ink when it is redder, less green and
// less blue than any one of eight (R, G, B) corners, green ink when less
// red and more green and blue than one of fifteen, blue ink when less red
// and green and more blue than one of twelve. At full resolution dark
// hematoxylin nuclei fall in the blue palette (0.46% of the GlaS train
// images' pixels), so only strokes count: connected ink smaller than
// a minimum area (in thumbnail pixels) is left to the tissue detector.
//
// A stroke's holes under m pixels (ink over the darkest nuclei leaves the
// palette) are ink too, and so is its rim (one pixel, 8-neighbours: a
// thumbnail blends the stroke's edge with what lies beside it).
//
// Contract: find_pen_ink(image, m) is a row-major mask of image's pixels:
// every 4-connected region of palette pixels of at least m pixels (m <= 1:
// every palette pixel), its holes under m pixels filled, grown by one pixel.
// It reads image only.
#pragma once

#include <cstdint>
#include <vector>

#include "data/image.h"

namespace histocnn {

// The smallest stroke, in square microns of the slide (0.01 mm^2: a dot of
// a fine marker). H&E's regions of palette pixels in the GlaS train images
// stay under a tenth of it at every thumbnail scale (tests/test_glas_real.cpp)
// and under 300 um^2 (a one-off count, 2026-12-03).
constexpr double kMinPenStrokeUm2 = 1e4;

// The palette's verdict on one pixel (the colours overlap: a dark blue
// stroke may hold a green corner too, so no colour is named).
bool is_pen_ink(uint8_t r, uint8_t g, uint8_t b);

std::vector<uint8_t> find_pen_ink(const Image& image, int64_t min_stroke_pixels);

}  // namespace histocnn
