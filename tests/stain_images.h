// Images rendered from known stain vectors and concentrations, for the
// stain tests (test_stain.cpp, test_stain_vahadane.cpp): the right answer is
// known.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>

#include "core/rng.h"
#include "data/image.h"
#include "data/stain.h"

namespace histocnn::stain_images {

using Vec3 = std::array<double, 3>;

inline Vec3 unit(Vec3 v) {
  const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  return {v[0] / n, v[1] / n, v[2] / n};
}

// Macenko's reference H&E vectors, and a second, visibly different staining.
inline const Vec3 kH = unit({0.5626, 0.7201, 0.4062}), kE = unit({0.2159, 0.8012, 0.5581});
inline const Vec3 kH2 = unit({0.65, 0.70, 0.29}), kE2 = unit({0.07, 0.99, 0.11});

// Tissue with haematoxylin / eosin concentrations spread over [0, max] (many
// nearly pure pixels of each stain, as nuclei and stroma), plus background.
inline Image render(const Vec3& h, const Vec3& e, double max_h, double max_e, uint64_t seed,
                    int size = 96) {
  Image im;
  im.width = im.height = size;
  im.rgb.resize(size_t(size) * size * 3);
  Rng rng(seed);
  for (int i = 0; i < size * size; ++i) {
    double ch = 0, ce = 0;
    const int kind = int(rng.below(10));
    if (kind == 0) {
      // background: no stain
    } else if (kind <= 3) {
      ch = rng.uniform(0.3, 1.0) * max_h, ce = rng.uniform(0.0, 0.05) * max_e;
    } else if (kind <= 6) {
      ce = rng.uniform(0.3, 1.0) * max_e, ch = rng.uniform(0.0, 0.05) * max_h;
    } else {
      ch = rng.uniform(0.1, 0.8) * max_h, ce = rng.uniform(0.1, 0.8) * max_e;
    }
    for (int c = 0; c < 3; ++c)
      im.rgb[3 * size_t(i) + c] = intensity_of(float(ch * h[c] + ce * e[c]));
  }
  return im;
}

inline double angle_between(const float a[3], const Vec3& b) {
  const double dot = a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
  return std::acos(std::clamp(dot, -1.0, 1.0)) * 180.0 / M_PI;
}

// Mean absolute difference of two images of one size, in 8-bit levels.
inline double mean_abs_diff(const Image& a, const Image& b) {
  double d = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) d += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return d / double(a.rgb.size());
}

}  // namespace histocnn::stain_images
