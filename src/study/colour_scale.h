// The one colour scale of histocnn's maps (ColorBrewer RdYlBu, reversed:
// blue 0 → pale yellow 0.5 → red 1): slide heatmaps of P(malignant) and
// Grad-CAM explanations draw their pixels and gnuplot's colour bar from it.
#pragma once

#include <cstdint>
#include <string>

namespace histocnn {

// The colour of v in [0, 1] (clamped; NaN is 0).
void heatmap_colour(double v, uint8_t rgb[3]);
// gnuplot's `set palette defined (...)` body for the same scale.
std::string heatmap_palette();

// The colour of class k (>= 0) on a map of classes: Okabe & Ito's
// colour-blind-safe set, ordered so that ordered grades run green, sky blue,
// yellow, orange, vermillion (healthy to poorly differentiated); it repeats
// after eight classes.
void class_colour(int k, uint8_t rgb[3]);
std::string class_colour_hex(int k);  // "#rrggbb"

}  // namespace histocnn
