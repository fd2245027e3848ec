#include "data/augment.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/rng.h"
#include "data/stain.h"

namespace histocnn {

std::string Normalization::text() const {
  char buf[160];
  // %.9g: every float survives the round trip (the model feeds eval exactly
  // what training saw; a resumed run continues exactly).
  std::snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g", mean[0], mean[1], mean[2],
                stdev[0], stdev[1], stdev[2]);
  return buf;
}

Normalization Normalization::parse(const std::string& text, const std::string& where) {
  Normalization n;
  const int read = std::sscanf(text.c_str(), "%f,%f,%f,%f,%f,%f", &n.mean[0], &n.mean[1],
                               &n.mean[2], &n.stdev[0], &n.stdev[1], &n.stdev[2]);
  require(read == 6 && n.stdev[0] > 0 && n.stdev[1] > 0 && n.stdev[2] > 0,
          where + ": bad normalisation '" + text + "'");
  return n;
}

namespace {
std::atomic<bool> per_pixel_hed{false};
}  // namespace

void set_per_pixel_hed(bool per_pixel) {
  per_pixel_hed = per_pixel;
}

int dihedral_count(int width, int height) {
  return width == height ? 8 : 4;
}

void dihedral_chw(const float* src, float* dst, int channels, int width, int height, int k) {
  require(k >= 0 && k < dihedral_count(width, height), "dihedral transform out of range");
  const bool flip_x = k & 1, flip_y = k & 2, transpose = k & 4;
  const size_t plane = size_t(width) * height;
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        int sx = flip_x ? width - 1 - x : x;
        int sy = flip_y ? height - 1 - y : y;
        if (transpose) std::swap(sx, sy);
        dst[c * plane + size_t(y) * width + x] = src[c * plane + size_t(sy) * width + sx];
      }
}

void augment_to_chw(const uint8_t* hwc, int width, int height, const AugmentOptions& options,
                    uint64_t seed, float* chw, const Normalization& norm) {
  Rng rng(seed);
  bool flip_x = false, flip_y = false, transpose = false;
  if (options.flips) {
    flip_x = rng.below(2);
    flip_y = rng.below(2);
  }
  if (options.rotations) {
    // A rotation by k*90 degrees = optional transpose + flips.
    const int k = width == height ? int(rng.below(4)) : 2 * int(rng.below(2));
    if (k == 1) transpose = true, flip_x = !flip_x;
    if (k == 2) flip_x = !flip_x, flip_y = !flip_y;
    if (k == 3) transpose = true, flip_y = !flip_y;
  }
  // Per-channel lookup table: identity scaled to [0,1], or the stain jitter.
  float lut[3][256], unit[3][256];
  for (int c = 0; c < 3; ++c) {
    float scale = 1.0f, shift = 0.0f;
    if (options.stain_jitter > 0) {
      scale = 1.0f + float(rng.uniform(-options.stain_jitter, options.stain_jitter));
      shift = float(rng.uniform(-options.stain_jitter, options.stain_jitter));
    }
    for (int v = 0; v < 256; ++v) {
      float x = v * (1.0f / 255.0f);
      if (options.stain_jitter > 0) {
        const float od = -std::log((v + 1.0f) / 256.0f);
        const float jittered = std::max(0.0f, od * scale + shift);
        x = std::clamp(std::exp(-jittered) * 256.0f / 255.0f - 1.0f / 255.0f, 0.0f, 1.0f);
      }
      unit[c][v] = x;
      lut[c][v] = (x - norm.mean[c]) / norm.stdev[c];
    }
  }
  const size_t plane = size_t(width) * height;
  // Output pixel (x, y) reads the source pixel the flips and transpose map it to.
  auto source = [&](int x, int y) {
    int sx = flip_x ? width - 1 - x : x;
    int sy = flip_y ? height - 1 - y : y;
    if (transpose) std::swap(sx, sy);
    return hwc + (size_t(sy) * width + sx) * 3;
  };
  if (options.hed_jitter > 0) {
    // Per pixel: the other jitter's table first, then the HED map in OD.
    float alpha_u[3], beta_u[3];
    for (int c = 0; c < 3; ++c) alpha_u[c] = float(rng.uniform(-1, 1));
    for (int c = 0; c < 3; ++c) beta_u[c] = float(rng.uniform(-1, 1));
    const HedJitter hed = HedJitter::draw(options.hed_jitter, alpha_u, beta_u);
    // The other jitter's output as optical density, per channel and value.
    float od_of[3][256];
    for (int c = 0; c < 3; ++c)
      for (int v = 0; v < 256; ++v) {
        od_of[c][v] = -std::log((unit[c][v] * 255.0f + 1.0f) / 256.0f);
      }
    const float inv_stdev[3] = {1.0f / norm.stdev[0], 1.0f / norm.stdev[1], 1.0f / norm.stdev[2]};
    // One output value from the transmitted fraction t = exp(-od').
    const auto store = [&](size_t o, int c, float t) {
      const float v = std::clamp((256.0f * t - 1.0f) * (1.0f / 255.0f), 0.0f, 1.0f);
      chw[c * plane + o] = (v - norm.mean[c]) * inv_stdev[c];
    };
    HedTables tables;
    if (!per_pixel_hed && tables.build(hed, od_of)) {
      for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
          const uint8_t* p = source(x, y);
          const size_t o = size_t(y) * width + x;
          for (int c = 0; c < 3; ++c) store(o, c, tables.transmitted(c, p));
        }
      return;
    }
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        const uint8_t* p = source(x, y);
        const float in[3] = {od_of[0][p[0]], od_of[1][p[1]], od_of[2][p[2]]};
        float od[3];
        hed.apply(in, od);
        const size_t o = size_t(y) * width + x;
        for (int c = 0; c < 3; ++c) store(o, c, std::exp(-od[c]));
      }
    }
    return;
  }
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t* p = source(x, y);
      const size_t o = size_t(y) * width + x;
      chw[o] = lut[0][p[0]];
      chw[plane + o] = lut[1][p[1]];
      chw[2 * plane + o] = lut[2][p[2]];
    }
  }
}

}  // namespace histocnn
