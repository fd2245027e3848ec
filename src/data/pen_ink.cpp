#include "data/pen_ink.h"

#include <algorithm>
#include <array>

#include "data/tissue.h"

namespace histocnn {
namespace {

struct Corner {
  uint8_t r, g, b;
};

// deep-histopath's corners (wsi/filter.py: filter_red_pen, filter_green_pen,
// filter_blue_pen), the same in histolab's image_filters_functional.py.
constexpr std::array<Corner, 8> kRed = {{{150, 80, 90},
                                         {110, 20, 30},
                                         {185, 65, 105},
                                         {195, 85, 125},
                                         {220, 115, 145},
                                         {125, 40, 70},
                                         {100, 50, 65},
                                         {85, 25, 45}}};
// Green ink's green and blue channels track together: both bounded below.
constexpr std::array<Corner, 15> kGreen = {{{150, 160, 140},
                                            {70, 110, 110},
                                            {45, 115, 100},
                                            {30, 75, 60},
                                            {195, 220, 210},
                                            {225, 230, 225},
                                            {170, 210, 200},
                                            {20, 30, 20},
                                            {50, 60, 40},
                                            {30, 50, 35},
                                            {65, 70, 60},
                                            {100, 110, 105},
                                            {165, 180, 180},
                                            {140, 140, 150},
                                            {185, 195, 195}}};
constexpr std::array<Corner, 12> kBlue = {{{60, 120, 190},
                                           {120, 170, 200},
                                           {175, 210, 230},
                                           {145, 180, 210},
                                           {37, 95, 160},
                                           {30, 65, 130},
                                           {130, 155, 180},
                                           {40, 35, 85},
                                           {30, 20, 65},
                                           {90, 90, 140},
                                           {60, 60, 120},
                                           {110, 110, 175}}};

template <size_t N, typename Inside>
bool any_corner(const std::array<Corner, N>& corners, Inside inside) {
  for (const Corner& c : corners)
    if (inside(c)) return true;
  return false;
}

// Every pixel next to a 1 (8-neighbours) set: a thumbnail blends a stroke's
// rim with the glass or tissue beside it, out of the palette.
std::vector<uint8_t> grown_by_one_pixel(const std::vector<uint8_t>& mask, int w, int h) {
  std::vector<uint8_t> out(mask.size(), 0);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      if (!mask[size_t(y) * w + x]) continue;
      for (int yy = std::max(0, y - 1); yy <= std::min(h - 1, y + 1); ++yy)
        for (int xx = std::max(0, x - 1); xx <= std::min(w - 1, x + 1); ++xx)
          out[size_t(yy) * w + xx] = 1;
    }
  return out;
}

}  // namespace

bool is_pen_ink(uint8_t r, uint8_t g, uint8_t b) {
  return any_corner(kRed, [&](const Corner& c) { return r > c.r && g < c.g && b < c.b; }) ||
         any_corner(kGreen, [&](const Corner& c) { return r < c.r && g > c.g && b > c.b; }) ||
         any_corner(kBlue, [&](const Corner& c) { return r < c.r && g < c.g && b > c.b; });
}

std::vector<uint8_t> find_pen_ink(const Image& image, int64_t min_stroke_pixels) {
  const size_t n = size_t(image.width) * image.height;
  std::vector<uint8_t> ink(n);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = &image.rgb[3 * i];
    ink[i] = is_pen_ink(p[0], p[1], p[2]);
  }
  const int w = image.width, h = image.height;
  remove_small_components(ink, w, h, 1, min_stroke_pixels, false);
  if (std::find(ink.begin(), ink.end(), 1) == ink.end())
    return ink;  // most slides: no pass over the rest
  // Under a stroke, the darkest nuclei fall out of the palette: a stroke's
  // holes smaller than a stroke are ink.
  remove_small_components(ink, w, h, 0, min_stroke_pixels, true);
  return grown_by_one_pixel(ink, w, h);
}

}  // namespace histocnn
