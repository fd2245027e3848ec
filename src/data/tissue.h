// Tissue detection on a slide's thumbnail: which pixels are tissue and which
// are glass, so background tiles are never scored.
//
// Method (as in CLAM and TIAToolbox): the HSV saturation of every pixel
// (glass is white or grey: saturation near 0; H&E tissue is pink and purple),
// a threshold by Otsu's method on its histogram — never below
// kMinTissueSaturation, so a blank slide is all glass instead of its noise
// split in two — then specks smaller than min_object_pixels removed and holes
// (gland lumens, tears) smaller than max_hole_pixels filled. Near-black pixels
// (scanner borders, pen) are not tissue; with min_ink_pixels >= 0 neither
// are pen strokes (data/pen_ink.h), which also stay out of Otsu's histogram
// (saturated ink would pull the threshold up) and are never filled as holes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "data/image.h"

namespace histocnn {

constexpr double kMinTissueSaturation = 0.05;

// A pixel's HSV saturation, 0-255: (max - min) / max of its channels, and 0
// for near-black pixels (max < 30: scanner borders, dark pen), which are not
// tissue. Tissue is saturation >= threshold * 255.
inline uint8_t pixel_saturation(const uint8_t* rgb) {
  const int hi = std::max({rgb[0], rgb[1], rgb[2]}), lo = std::min({rgb[0], rgb[1], rgb[2]});
  return hi < 30 ? 0 : uint8_t((hi - lo) * 255 / hi);
}

struct TissueOptions {
  double threshold = -1;  // saturation in (0, 1]; < 0: Otsu's
  int64_t min_object_pixels = 0;
  int64_t max_hole_pixels = 0;
  int64_t min_ink_pixels = -1;  // the smallest pen stroke; < 0: ink is not looked for
};

struct TissueMask {
  int width = 0, height = 0;
  std::vector<uint8_t> tissue;  // 1 = tissue, row-major
  std::vector<uint8_t> ink;     // 1 = pen ink left out; empty when not looked for
  double threshold = 0;         // the saturation threshold used
  int64_t tissue_pixels() const;
  int64_t ink_pixels() const;
  // Fraction of tissue in the rectangle [x0, x1) x [y0, y1) (clipped; 0 when empty).
  double fraction(double x0, double y0, double x1, double y1) const;
  // White tissue on black, pen ink left out grey, for a person to check.
  Image to_image() const;
};

// Otsu's threshold of 256-bin histogram counts: the bin index t that
// maximises the between-class variance of [0, t) against [t, 256) (the
// middle of the range of such t when several tie).
int otsu_threshold(const std::vector<int64_t>& histogram);

TissueMask detect_tissue(const Image& thumbnail, const TissueOptions& options = {});

// Connected components (4-neighbours) of value `v` smaller than max_pixels
// in a row-major 0/1 mask are set to 1 - v. holes_only: only components not
// touching the border.
void remove_small_components(std::vector<uint8_t>& mask, int width, int height, uint8_t v,
                             int64_t max_pixels, bool holes_only);
void remove_small_components(TissueMask& mask, uint8_t v, int64_t max_pixels, bool holes_only);

}  // namespace histocnn
