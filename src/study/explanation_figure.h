// The picture of an explanation (train/explain.h): the image with its
// Grad-CAM map blended in the heatmap colour scale, and a figure of it with
// the colour bar and a title naming the image, the class and the model.
#pragma once

#include <string>

#include "data/image.h"
#include "train/explain.h"

namespace histocnn {

// The image with the map blended in, more opaque where the map is higher
// (alpha 0.6 x value), so tissue the network ignored stays visible.
// Requires: the explanation of this image (same size).
Image explanation_overlay(const Image& image, const Explanation& explanation);

// <base>.overlay.png (the overlay at the image's pixels) and <base>.png (it
// with axes in pixels, the colour bar "Grad-CAM, relative" and `title`;
// gnuplot). Throws when gnuplot fails; where it is not installed, the scripts alone
// (render_gnuplot).
void write_explanation_figure(const std::string& base, const Image& image,
                              const Explanation& explanation, const std::string& title);

}  // namespace histocnn
