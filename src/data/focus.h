// How sharp a tile is: out-of-focus regions are a scanner's commonest fault
// (HistoQC's blur module, Campanella et al. 2018), and a network scores
// blurred tissue as if it were what it saw. `slide` measures every tile as
// the network sees it (after the resize to the model's scale and any stain
// normalisation), so blur too fine for the model to notice does not count,
// and two scanners at the same microns per network pixel are comparable.
//
// The measure is the variance of the Laplacian of the luminance (Pech-Pacheco
// et al. 2000), the one HistoQC and most QC pipelines use, over the tile's
// tissue pixels (pixel_saturation >= kMinTissueSaturation, data/tissue.h):
// glass is flat whether in focus or not, so a tile half on
// glass would otherwise read half as sharp. Units: luminance levels squared
// (0-255 scale, 4-neighbour Laplacian). Sharp H&E at 1-2.5 µm per network
// pixel reads in the hundreds to thousands; a blur of a few microns divides
// that by ten or more.
#pragma once

#include "data/image.h"

namespace histocnn {

// Fewer tissue pixels than this and every pixel counts (a tile the mask
// called tissue but which holds too little to judge).
constexpr int kMinFocusPixels = 64;

// The variance of the Laplacian over the tissue pixels of `tile` (pixels
// with all four neighbours inside the tile). 0 for a tile under 3 x 3.
double focus_measure(const Image& tile);

// The same from first principles (every pixel's Laplacian into a list, the
// two-pass variance): the reference focus_measure is tested against.
double focus_measure_reference(const Image& tile);

}  // namespace histocnn
