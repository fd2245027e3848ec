// Images in memory (8-bit RGB, row-major HWC) and their decoding, encoding
// and resizing through stb_image / stb_image_write / stb_image_resize, PNGs
// written by libpng.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace histocnn {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3
  uint8_t* row(int y) { return rgb.data() + size_t(y) * width * 3; }
  const uint8_t* row(int y) const { return rgb.data() + size_t(y) * width * 3; }
};

// Decodes BMP, PNG, JPEG (and TGA/PNM) with stb_image and TIFF with libtiff
// (data/tiff_image.h), by content, not by extension. RGBA loses its alpha
// channel; 16-bit images are reduced to 8 bits. Grayscale, truncated or
// corrupt files raise an Error naming the file.
Image load_image(const std::string& path);
// The width and height `load_image` would give, read from the header only
// (stb_image's info; libtiff for TIFF). Unreadable files raise the Error
// load_image would.
std::pair<int, int> read_image_size(const std::string& path);
// The same from the file's bytes; `path` names it in errors.
Image decode_image(const std::string& bytes, const std::string& path);
// Writes by extension (.png, .bmp, .jpg), atomically.
void save_image(const std::string& path, const Image& image);

// Area (box-filter) resampling when shrinking, as the paper's pipeline did.
Image resize_area(const Image& src, int width, int height);
Image crop(const Image& src, int x, int y, int width, int height);

}  // namespace histocnn
