#include "study/colour_scale.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>

namespace histocnn {
namespace {

struct Stop {
  double at;
  uint8_t r, g, b;
};
constexpr Stop kStops[] = {{0.0, 49, 54, 149},
                           {0.25, 116, 173, 209},
                           {0.5, 255, 255, 191},
                           {0.75, 244, 109, 67},
                           {1.0, 165, 0, 38}};

constexpr uint8_t kClassColours[][3] = {{0, 158, 115}, {86, 180, 233}, {240, 228, 66},
                                        {230, 159, 0}, {213, 94, 0},   {204, 121, 167},
                                        {0, 114, 178}, {0, 0, 0}};

}  // namespace

void class_colour(int k, uint8_t rgb[3]) {
  const auto& c = kClassColours[size_t(k < 0 ? 0 : k) % std::size(kClassColours)];
  std::copy(c, c + 3, rgb);
}

std::string class_colour_hex(int k) {
  uint8_t c[3];
  class_colour(k, c);
  char hex[8];
  std::snprintf(hex, sizeof hex, "#%02x%02x%02x", c[0], c[1], c[2]);
  return hex;
}

void heatmap_colour(double v, uint8_t rgb[3]) {
  v = std::clamp(std::isfinite(v) ? v : 0.0, 0.0, 1.0);
  size_t i = 1;
  while (i + 1 < std::size(kStops) && v > kStops[i].at) ++i;
  const Stop& a = kStops[i - 1];
  const Stop& b = kStops[i];
  const double f = (v - a.at) / (b.at - a.at);
  rgb[0] = uint8_t(std::lround(a.r + f * (b.r - a.r)));
  rgb[1] = uint8_t(std::lround(a.g + f * (b.g - a.g)));
  rgb[2] = uint8_t(std::lround(a.b + f * (b.b - a.b)));
}

std::string heatmap_palette() {
  std::string palette;
  for (const Stop& s : kStops) {
    char stop[48];
    std::snprintf(stop, sizeof stop, "%s%g '#%02x%02x%02x'", palette.empty() ? "" : ", ", s.at, s.r,
                  s.g, s.b);
    palette += stop;
  }
  return palette;
}

}  // namespace histocnn
