#include "data/tissue.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/pen_ink.h"

namespace histocnn {

int64_t TissueMask::tissue_pixels() const {
  int64_t n = 0;
  for (uint8_t v : tissue) n += v;
  return n;
}

int64_t TissueMask::ink_pixels() const {
  int64_t n = 0;
  for (uint8_t v : ink) n += v;
  return n;
}

double TissueMask::fraction(double x0, double y0, double x1, double y1) const {
  const int ix0 = std::max(0, int(std::floor(x0))), iy0 = std::max(0, int(std::floor(y0)));
  const int ix1 = std::min(width, int(std::ceil(x1))), iy1 = std::min(height, int(std::ceil(y1)));
  if (ix0 >= ix1 || iy0 >= iy1) return 0;
  int64_t n = 0;
  for (int y = iy0; y < iy1; ++y)
    for (int x = ix0; x < ix1; ++x) n += tissue[size_t(y) * width + x];
  return double(n) / (double(ix1 - ix0) * (iy1 - iy0));
}

Image TissueMask::to_image() const {
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(tissue.size() * 3);
  for (size_t i = 0; i < tissue.size(); ++i) {
    const uint8_t shade = tissue[i] ? 255 : !ink.empty() && ink[i] ? 128 : 0;
    out.rgb[3 * i] = out.rgb[3 * i + 1] = out.rgb[3 * i + 2] = shade;
  }
  return out;
}

int otsu_threshold(const std::vector<int64_t>& histogram) {
  double total = 0, sum = 0;
  for (size_t i = 0; i < histogram.size(); ++i) {
    total += double(histogram[i]);
    sum += double(i) * double(histogram[i]);
  }
  // Separated modes leave a plateau of equal variance between them: its
  // middle, not its first bin, is the threshold.
  double below = 0, below_sum = 0, best = -1;
  int first = 0, last = 0;
  for (size_t t = 1; t < histogram.size(); ++t) {
    below += double(histogram[t - 1]);
    below_sum += double(t - 1) * double(histogram[t - 1]);
    const double above = total - below;
    if (below == 0 || above == 0) continue;
    const double mean_diff = below_sum / below - (sum - below_sum) / above;
    const double between = below * above * mean_diff * mean_diff;
    if (between > best * (1 + 1e-12)) {
      best = between;
      first = last = int(t);
    } else if (between >= best * (1 - 1e-12)) {
      last = int(t);
    }
  }
  return (first + last) / 2;
}

void remove_small_components(std::vector<uint8_t>& mask, int w, int h, uint8_t v,
                             int64_t max_pixels, bool holes_only) {
  if (max_pixels <= 0) return;
  std::vector<uint8_t> seen(mask.size(), 0);
  std::vector<int64_t> component, stack;
  for (int64_t start = 0; start < int64_t(mask.size()); ++start) {
    if (seen[start] || mask[start] != v) continue;
    component.clear();
    stack.assign(1, start);
    seen[start] = 1;
    bool touches_border = false;
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      component.push_back(p);
      const int x = int(p % w), y = int(p / w);
      touches_border |= x == 0 || y == 0 || x == w - 1 || y == h - 1;
      const int64_t next[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1,
                               y < h - 1 ? p + w : -1};
      for (int64_t q : next)
        if (q >= 0 && !seen[q] && mask[q] == v) {
          seen[q] = 1;
          stack.push_back(q);
        }
    }
    if (int64_t(component.size()) < max_pixels && !(holes_only && touches_border))
      for (int64_t p : component) mask[p] = uint8_t(1 - v);
  }
}

void remove_small_components(TissueMask& mask, uint8_t v, int64_t max_pixels, bool holes_only) {
  remove_small_components(mask.tissue, mask.width, mask.height, v, max_pixels, holes_only);
}

TissueMask detect_tissue(const Image& thumbnail, const TissueOptions& options) {
  require(thumbnail.width > 0 && thumbnail.height > 0, "tissue detection on an empty image");
  require(options.threshold < 0 || (options.threshold > 0 && options.threshold <= 1),
          "--tissue-threshold must be a saturation in (0, 1]");
  const size_t n = size_t(thumbnail.width) * thumbnail.height;
  TissueMask mask;
  mask.width = thumbnail.width;
  mask.height = thumbnail.height;
  if (options.min_ink_pixels >= 0) mask.ink = find_pen_ink(thumbnail, options.min_ink_pixels);
  const auto is_ink = [&](size_t i) { return !mask.ink.empty() && mask.ink[i]; };
  std::vector<uint8_t> saturation(n);
  std::vector<int64_t> histogram(256, 0);
  for (size_t i = 0; i < n; ++i) {
    saturation[i] = pixel_saturation(&thumbnail.rgb[3 * i]);
    if (!is_ink(i)) ++histogram[saturation[i]];
  }
  mask.threshold = options.threshold > 0
                       ? options.threshold
                       : std::max(kMinTissueSaturation, otsu_threshold(histogram) / 255.0);
  mask.tissue.resize(n);
  for (size_t i = 0; i < n; ++i)
    mask.tissue[i] = saturation[i] >= mask.threshold * 255 && !is_ink(i) ? 1 : 0;
  remove_small_components(mask, 1, options.min_object_pixels, false);
  remove_small_components(mask, 0, options.max_hole_pixels, true);
  for (size_t i = 0; i < n; ++i)  // a stroke across tissue is a hole, not a lumen
    if (is_ink(i)) mask.tissue[i] = 0;
  return mask;
}

}  // namespace histocnn
