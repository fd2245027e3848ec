#include "data/focus.h"

#include <algorithm>
#include <vector>

#include "data/tissue.h"

namespace histocnn {
namespace {

double luminance(const uint8_t* p) {
  return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
}

bool is_tissue(const uint8_t* p) {
  return pixel_saturation(p) >= kMinTissueSaturation * 255;
}

// The 4-neighbour Laplacian of luminance at interior pixel (x, y), given the
// tile's luminance plane.
double laplacian(const std::vector<double>& y, int width, int x, int row) {
  const size_t i = size_t(row) * width + x;
  return 4 * y[i] - y[i - 1] - y[i + 1] - y[i - size_t(width)] - y[i + size_t(width)];
}

std::vector<double> luminance_plane(const Image& tile) {
  std::vector<double> y(size_t(tile.width) * tile.height);
  for (int r = 0; r < tile.height; ++r)
    for (int x = 0; x < tile.width; ++x)
      y[size_t(r) * tile.width + x] = luminance(tile.row(r) + 3 * x);
  return y;
}

// Sums of L and L^2 over interior pixels, of tissue only or of all.
struct Moments {
  double n = 0, sum = 0, squares = 0;
};
Moments laplacian_moments(const Image& tile, const std::vector<double>& y, bool tissue_only) {
  Moments m;
  for (int r = 1; r + 1 < tile.height; ++r)
    for (int x = 1; x + 1 < tile.width; ++x) {
      if (tissue_only && !is_tissue(tile.row(r) + 3 * x)) continue;
      const double l = laplacian(y, tile.width, x, r);
      m.n += 1;
      m.sum += l;
      m.squares += l * l;
    }
  return m;
}

}  // namespace

double focus_measure(const Image& tile) {
  if (tile.width < 3 || tile.height < 3) return 0;
  const std::vector<double> y = luminance_plane(tile);
  Moments m = laplacian_moments(tile, y, true);
  if (m.n < kMinFocusPixels) m = laplacian_moments(tile, y, false);
  if (m.n == 0) return 0;
  const double mean = m.sum / m.n;
  return std::max(0.0, m.squares / m.n - mean * mean);
}

double focus_measure_reference(const Image& tile) {
  if (tile.width < 3 || tile.height < 3) return 0;
  auto lum = [&](int x, int r) { return luminance(tile.row(r) + 3 * x); };
  std::vector<double> tissue, all;
  for (int r = 1; r + 1 < tile.height; ++r)
    for (int x = 1; x + 1 < tile.width; ++x) {
      const double l =
          4 * lum(x, r) - lum(x - 1, r) - lum(x + 1, r) - lum(x, r - 1) - lum(x, r + 1);
      all.push_back(l);
      if (is_tissue(tile.row(r) + 3 * x)) tissue.push_back(l);
    }
  const std::vector<double>& v = tissue.size() >= size_t(kMinFocusPixels) ? tissue : all;
  if (v.empty()) return 0;
  double mean = 0, variance = 0;
  for (double l : v) mean += l / double(v.size());
  for (double l : v) variance += (l - mean) * (l - mean) / double(v.size());
  return variance;
}

}  // namespace histocnn
