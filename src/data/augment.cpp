#include "data/augment.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>

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

namespace {

// Where output pixel (x, y) of dihedral transform k reads from: one map for
// both forms, so they cannot disagree.
template <typename F>
void each_dihedral_source(int width, int height, int k, F&& f) {
  require(k >= 0 && k < dihedral_count(width, height), "dihedral transform out of range");
  const bool flip_x = k & 1, flip_y = k & 2, transpose = k & 4;
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      int sx = flip_x ? width - 1 - x : x;
      int sy = flip_y ? height - 1 - y : y;
      if (transpose) std::swap(sx, sy);
      f(size_t(y) * width + x, size_t(sy) * width + sx);
    }
}

}  // namespace

void dihedral_chw(const float* src, float* dst, int channels, int width, int height, int k) {
  const size_t plane = size_t(width) * height;
  for (int c = 0; c < channels; ++c)
    each_dihedral_source(width, height, k, [&](size_t to, size_t from) {
      dst[c * plane + to] = src[c * plane + from];
    });
}

void dihedral_hwc(const uint8_t* src, uint8_t* dst, int width, int height, int k) {
  each_dihedral_source(width, height, k, [&](size_t to, size_t from) {
    std::memcpy(dst + to * 3, src + from * 3, 3);
  });
}

namespace {

// Where output pixel (x, y) reads: the flips and the transpose of a drawn
// dihedral transform.
struct PixelMap {
  bool flip_x = false, flip_y = false, transpose = false;
  int width = 0, height = 0;

  static PixelMap draw(Rng& rng, const AugmentOptions& options, int width, int height) {
    PixelMap m;
    m.width = width, m.height = height;
    if (options.flips) {
      m.flip_x = rng.below(2);
      m.flip_y = rng.below(2);
    }
    if (options.rotations) {
      // A rotation by k*90 degrees = optional transpose + flips.
      const int k = width == height ? int(rng.below(4)) : 2 * int(rng.below(2));
      if (k == 1) m.transpose = true, m.flip_x = !m.flip_x;
      if (k == 2) m.flip_x = !m.flip_x, m.flip_y = !m.flip_y;
      if (k == 3) m.transpose = true, m.flip_y = !m.flip_y;
    }
    return m;
  }
  // f(source pixel's 3 bytes, output offset within a plane), row by row.
  template <typename F>
  void each(const uint8_t* hwc, F&& f) const {
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        int sx = flip_x ? width - 1 - x : x;
        int sy = flip_y ? height - 1 - y : y;
        if (transpose) std::swap(sx, sy);
        f(hwc + (size_t(sy) * width + sx) * 3, size_t(y) * width + x);
      }
  }
};

// Per channel and byte value: the value in [0, 1] after the stain jitter (or
// v / 255 without), and that normalised.
struct ChannelTables {
  float unit[3][256], normalised[3][256];

  ChannelTables(Rng& rng, float stain_jitter, const Normalization& norm) {
    for (int c = 0; c < 3; ++c) {
      float scale = 1.0f, shift = 0.0f;
      if (stain_jitter > 0) {
        scale = 1.0f + float(rng.uniform(-stain_jitter, stain_jitter));
        shift = float(rng.uniform(-stain_jitter, stain_jitter));
      }
      for (int v = 0; v < 256; ++v) {
        float x = v * (1.0f / 255.0f);
        if (stain_jitter > 0) {
          const float od = -std::log((v + 1.0f) / 256.0f);
          const float jittered = std::max(0.0f, od * scale + shift);
          x = std::clamp(std::exp(-jittered) * 256.0f / 255.0f - 1.0f / 255.0f, 0.0f, 1.0f);
        }
        unit[c][v] = x;
        normalised[c][v] = (x - norm.mean[c]) / norm.stdev[c];
      }
    }
  }
};

// The HED map in optical density after the channel tables' jitter.
void hed_to_chw(const uint8_t* hwc, const PixelMap& map, Rng& rng, float sigma,
                const ChannelTables& tables, const Normalization& norm, float* chw) {
  float alpha_u[3], beta_u[3];
  for (int c = 0; c < 3; ++c) alpha_u[c] = float(rng.uniform(-1, 1));
  for (int c = 0; c < 3; ++c) beta_u[c] = float(rng.uniform(-1, 1));
  const HedJitter hed = HedJitter::draw(sigma, alpha_u, beta_u);
  float od_of[3][256];  // the channel tables' output as optical density
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v)
      od_of[c][v] = -std::log((tables.unit[c][v] * 255.0f + 1.0f) / 256.0f);
  const size_t plane = size_t(map.width) * map.height;
  const float inv_stdev[3] = {1.0f / norm.stdev[0], 1.0f / norm.stdev[1], 1.0f / norm.stdev[2]};
  // One output value from the transmitted fraction t = exp(-od').
  const auto store = [&](size_t o, int c, float t) {
    const float v = std::clamp((256.0f * t - 1.0f) * (1.0f / 255.0f), 0.0f, 1.0f);
    chw[c * plane + o] = (v - norm.mean[c]) * inv_stdev[c];
  };
  HedTables hed_tables;
  if (!per_pixel_hed && hed_tables.build(hed, od_of)) {
    map.each(hwc, [&](const uint8_t* p, size_t o) {
      for (int c = 0; c < 3; ++c) store(o, c, hed_tables.transmitted(c, p));
    });
    return;
  }
  map.each(hwc, [&](const uint8_t* p, size_t o) {
    const float in[3] = {od_of[0][p[0]], od_of[1][p[1]], od_of[2][p[2]]};
    float od[3];
    hed.apply(in, od);
    for (int c = 0; c < 3; ++c) store(o, c, std::exp(-od[c]));
  });
}

}  // namespace

void augment_to_chw(const uint8_t* hwc, int width, int height, const AugmentOptions& options,
                    uint64_t seed, float* chw, const Normalization& norm) {
  // The draws' order is part of the result: transform, stain jitter, HED.
  Rng rng(seed);
  const PixelMap map = PixelMap::draw(rng, options, width, height);
  const ChannelTables tables(rng, options.stain_jitter, norm);
  if (options.hed_jitter > 0)
    return hed_to_chw(hwc, map, rng, options.hed_jitter, tables, norm, chw);
  const size_t plane = size_t(width) * height;
  map.each(hwc, [&](const uint8_t* p, size_t o) {
    for (int c = 0; c < 3; ++c) chw[c * plane + o] = tables.normalised[c][p[c]];
  });
}

void augment_to_bytes(const uint8_t* hwc, int width, int height, const AugmentOptions& options,
                      uint64_t seed, uint8_t* out, float* tables, const Normalization& norm) {
  require(options.hed_jitter <= 0,
          "HED jitter mixes the three channels of a pixel: its images cannot travel as bytes");
  // The same draws in the same order as augment_to_chw.
  Rng rng(seed);
  const PixelMap map = PixelMap::draw(rng, options, width, height);
  const ChannelTables channel(rng, options.stain_jitter, norm);
  std::memcpy(tables, channel.normalised, sizeof channel.normalised);
  if (map.transpose)
    return map.each(hwc, [&](const uint8_t* p, size_t o) { std::memcpy(out + o * 3, p, 3); });
  // Without a transpose a row comes from one row: copied whole, or reversed.
  const size_t row = size_t(width) * 3;
  for (int y = 0; y < height; ++y) {
    const uint8_t* from = hwc + size_t(map.flip_y ? height - 1 - y : y) * row;
    uint8_t* to = out + size_t(y) * row;
    if (!map.flip_x) {
      std::memcpy(to, from, row);
      continue;
    }
    for (int x = 0; x < width; ++x)
      std::memcpy(to + size_t(x) * 3, from + row - size_t(x + 1) * 3, 3);
  }
}

}  // namespace histocnn
