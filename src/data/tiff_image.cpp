#include "data/tiff_image.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <memory>

#include "core/error.h"

namespace histocnn {
namespace {

// libtiff reports through global handlers; the last error of this thread is
// kept so the Error can say what was wrong, and warnings (unknown private
// tags, common in scanner files) are not printed.
thread_local std::string last_tiff_error;

void keep_error(const char* module, const char* format, va_list args) {
  char text[512];
  std::vsnprintf(text, sizeof text, format, args);
  last_tiff_error = module ? std::string(module) + ": " + text : text;
}
void ignore_warning(const char*, const char*, va_list) {}

struct TiffCloser {
  void operator()(TIFF* tiff) const { TIFFClose(tiff); }
};

}  // namespace

void tiff_errors_to_this_thread() {
  TIFFSetErrorHandler(keep_error);
  TIFFSetWarningHandler(ignore_warning);
  last_tiff_error.clear();
}

std::string last_tiff_error_message() {
  return last_tiff_error.empty() ? "no detail from libtiff" : last_tiff_error;
}

bool is_tiff_signature(const std::string& b) {
  return b.size() >= 4 && ((b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && !b[3]) ||
                           (b[0] == 'M' && b[1] == 'M' && !b[2] && (b[3] == 42 || b[3] == 43)));
}

std::pair<int, int> tiff_image_size(const std::string& path) {
  tiff_errors_to_this_thread();
  std::unique_ptr<TIFF, TiffCloser> tiff(TIFFOpen(path.c_str(), "r"));
  if (!tiff) fail(path + ": not a readable TIFF (" + last_tiff_error + ")");
  uint32_t w = 0, h = 0;
  TIFFGetField(tiff.get(), TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tiff.get(), TIFFTAG_IMAGELENGTH, &h);
  require(w > 0 && h > 0 && w <= 32768 && h <= 32768,
          path + ": TIFF of " + std::to_string(w) + "x" + std::to_string(h) + " pixels");
  return {int(w), int(h)};
}

bool is_large_pyramidal_tiff(const std::string& path, int64_t side) {
  tiff_errors_to_this_thread();
  std::unique_ptr<TIFF, TiffCloser> tiff(TIFFOpen(path.c_str(), "r"));
  if (!tiff) return false;
  uint32_t w = 0, h = 0;
  TIFFGetField(tiff.get(), TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tiff.get(), TIFFTAG_IMAGELENGTH, &h);
  if (int64_t(std::max(w, h)) <= side) return false;
  uint16_t subifds = 0;
  uint64_t* offsets = nullptr;
  if (TIFFGetField(tiff.get(), TIFFTAG_SUBIFD, &subifds, &offsets) && subifds > 0) return true;
  return TIFFReadDirectory(tiff.get()) != 0;
}

std::pair<int64_t, int64_t> larger_later_tiff_page(const std::string& path) {
  tiff_errors_to_this_thread();
  std::unique_ptr<TIFF, TiffCloser> tiff(TIFFOpen(path.c_str(), "r"));
  if (!tiff) return {0, 0};
  uint32_t w = 0, h = 0;
  TIFFGetField(tiff.get(), TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tiff.get(), TIFFTAG_IMAGELENGTH, &h);
  const uint64_t first = uint64_t(w) * h;
  for (int page = 1; page < 64 && TIFFReadDirectory(tiff.get()); ++page) {
    uint32_t pw = 0, ph = 0;
    TIFFGetField(tiff.get(), TIFFTAG_IMAGEWIDTH, &pw);
    TIFFGetField(tiff.get(), TIFFTAG_IMAGELENGTH, &ph);
    if (uint64_t(pw) * ph > 4 * first) return {pw, ph};
  }
  return {0, 0};
}

Image load_tiff_image(const std::string& path) {
  tiff_errors_to_this_thread();
  std::unique_ptr<TIFF, TiffCloser> tiff(TIFFOpen(path.c_str(), "r"));
  if (!tiff) fail(path + ": not a readable TIFF (" + last_tiff_error + ")");
  uint32_t w = 0, h = 0;
  uint16_t samples = 0;
  TIFFGetField(tiff.get(), TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tiff.get(), TIFFTAG_IMAGELENGTH, &h);
  TIFFGetFieldDefaulted(tiff.get(), TIFFTAG_SAMPLESPERPIXEL, &samples);
  require(w > 0 && h > 0 && w <= 32768 && h <= 32768 && uint64_t(w) * h <= (uint64_t(1) << 28),
          path + ": TIFF of " + std::to_string(w) + "x" + std::to_string(h) +
              " pixels (at most 32768 per side and 268 megapixels; a whole slide goes to "
              "`histocnn slide`)");
  require(samples >= 3, path + ": grayscale TIFF (" + std::to_string(samples) +
                            " sample per pixel); H&E images must be RGB");
  std::vector<uint32_t> raster(size_t(w) * h);
  if (!TIFFReadRGBAImageOriented(tiff.get(), w, h, raster.data(), ORIENTATION_TOPLEFT, 1))
    fail(path + ": corrupt or truncated TIFF (" + last_tiff_error + ")");
  Image image;
  image.width = int(w);
  image.height = int(h);
  image.rgb.resize(raster.size() * 3);
  for (size_t i = 0; i < raster.size(); ++i) {
    image.rgb[3 * i] = uint8_t(TIFFGetR(raster[i]));
    image.rgb[3 * i + 1] = uint8_t(TIFFGetG(raster[i]));
    image.rgb[3 * i + 2] = uint8_t(TIFFGetB(raster[i]));
  }
  return image;
}

}  // namespace histocnn
