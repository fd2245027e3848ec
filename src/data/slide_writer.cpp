#include "data/slide_writer.h"

#include <tiffio.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/error.h"

namespace histocnn {
namespace {

constexpr int kStripRows = 512;  // even: a strip halves into whole rows

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// A level's strip halved in both directions (box filter; an odd last column
// or row is averaged with itself).
Image halve(const Image& strip, int out_width) {
  Image out;
  out.width = out_width;
  out.height = strip.height / 2;
  out.rgb.resize(size_t(out.width) * out.height * 3);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int c = 0; c < 3; ++c) {
        const int x1 = std::min(2 * x + 1, strip.width - 1);
        const int sum = strip.row(2 * y)[6 * x + c] + strip.row(2 * y)[3 * x1 + c] +
                        strip.row(2 * y + 1)[6 * x + c] + strip.row(2 * y + 1)[3 * x1 + c];
        out.row(y)[3 * x + c] = uint8_t((sum + 2) / 4);
      }
  return out;
}

class PyramidWriter {
 public:
  PyramidWriter(const std::string& path, bool big, const SlideWriterOptions& o)
      : path_(path), options_(o) {
    tiff_ = TIFFOpen(path.c_str(), big ? "w8" : "w");
    if (!tiff_) fail(path + ": cannot write a TIFF here");
  }
  ~PyramidWriter() {
    if (tiff_) TIFFClose(tiff_);
  }
  PyramidWriter(const PyramidWriter&) = delete;
  PyramidWriter& operator=(const PyramidWriter&) = delete;

  void begin_level(int64_t width, int64_t height, int level) {
    width_ = width;
    const double per_cm = 1e4 / (options_.mpp * double(int64_t(1) << level));
    TIFFSetField(tiff_, TIFFTAG_SUBFILETYPE, level ? FILETYPE_REDUCEDIMAGE : 0);
    TIFFSetField(tiff_, TIFFTAG_IMAGEWIDTH, uint32_t(width));
    TIFFSetField(tiff_, TIFFTAG_IMAGELENGTH, uint32_t(height));
    TIFFSetField(tiff_, TIFFTAG_SAMPLESPERPIXEL, uint16_t(3));
    TIFFSetField(tiff_, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
    TIFFSetField(tiff_, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tiff_, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
    TIFFSetField(tiff_, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
    TIFFSetField(tiff_, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);  // we give RGB
    TIFFSetField(tiff_, TIFFTAG_JPEGQUALITY, options_.quality);
    TIFFSetField(tiff_, TIFFTAG_TILEWIDTH, uint32_t(options_.tile));
    TIFFSetField(tiff_, TIFFTAG_TILELENGTH, uint32_t(options_.tile));
    TIFFSetField(tiff_, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tiff_, TIFFTAG_XRESOLUTION, float(per_cm));
    TIFFSetField(tiff_, TIFFTAG_YRESOLUTION, float(per_cm));
    tile_.assign(size_t(options_.tile) * options_.tile * 3, 255);
  }
  // Rows [y, y + strip.height) of the level, y a multiple of the tile side.
  void write_strip(const Image& strip, int64_t y) {
    const int t = options_.tile;
    for (int ty = 0; ty < strip.height; ty += t)
      for (int64_t tx = 0; tx < width_; tx += t) {
        std::fill(tile_.begin(), tile_.end(), 255);  // edges padded with glass
        for (int r = 0; r < t && ty + r < strip.height; ++r)
          std::copy_n(strip.row(ty + r) + tx * 3, size_t(std::min<int64_t>(t, width_ - tx)) * 3,
                      &tile_[size_t(r) * t * 3]);
        if (TIFFWriteTile(tiff_, tile_.data(), uint32_t(tx), uint32_t(y + ty), 0, 0) < 0)
          fail(path_ + ": writing a tile failed (disk full?)");
      }
  }
  void end_level() {
    if (!TIFFWriteDirectory(tiff_)) fail(path_ + ": writing a pyramid level failed");
  }
  void close() {
    TIFFClose(tiff_);
    tiff_ = nullptr;
  }

 private:
  std::string path_;
  SlideWriterOptions options_;
  TIFF* tiff_ = nullptr;
  int64_t width_ = 0;
  std::vector<uint8_t> tile_;
};

// Removes the level temporaries on every way out.
struct Temporaries {
  std::vector<std::string> paths;
  ~Temporaries() {
    std::error_code ec;
    for (const auto& p : paths) std::filesystem::remove(p, ec);
  }
};

}  // namespace

void write_pyramidal_tiff(const std::string& path, int64_t width, int64_t height,
                          const StripPainter& paint, const SlideWriterOptions& o) {
  require(width >= 1 && height >= 1 && width <= (int64_t(1) << 22) && height <= (int64_t(1) << 22),
          path + ": a slide of " + std::to_string(width) + "x" + std::to_string(height) +
              " pixels (1 to 4194304 a side)");
  require(o.tile >= 16 && o.tile % 16 == 0 && kStripRows % o.tile == 0 && o.mpp > 0,
          path + ": tile side must be 16..512, a multiple of 16");
  const std::string partial = path + ".partial";
  Temporaries temporaries{{partial}};
  {
    PyramidWriter writer(partial, width * height * 3 > (int64_t(1) << 31), o);
    File source;  // the level being written, when it is a temporary
    for (int level = 0;; ++level) {
      const int64_t w = std::max<int64_t>(1, width >> level),
                    h = std::max<int64_t>(1, height >> level);
      const bool last = std::max(w, h) <= 512;
      File next;
      if (!last) {
        temporaries.paths.push_back(path + ".level" + std::to_string(level + 1) + ".raw");
        next.reset(std::fopen(temporaries.paths.back().c_str(), "w+b"));
        require(next != nullptr, temporaries.paths.back() + ": cannot write a temporary");
      }
      writer.begin_level(w, h, level);
      for (int64_t y = 0; y < h; y += kStripRows) {
        const int rows = int(std::min<int64_t>(kStripRows, h - y));
        Image strip;
        if (level == 0) {
          strip = paint(0, y, int(w), rows);
        } else {
          strip.width = int(w);
          strip.height = rows;
          strip.rgb.resize(size_t(w) * rows * 3);
          require(
              std::fread(strip.rgb.data(), 1, strip.rgb.size(), source.get()) == strip.rgb.size(),
              path + ": reading back a pyramid level failed");
        }
        writer.write_strip(strip, y);
        if (next) {
          if (strip.height % 2) {  // the last odd row: repeated
            strip.rgb.insert(strip.rgb.end(), strip.rgb.end() - w * 3, strip.rgb.end());
            ++strip.height;
          }
          const Image half = halve(strip, int(std::max<int64_t>(1, w / 2)));
          const size_t keep = size_t(half.width) *
                              std::min<int64_t>(half.height, std::max<int64_t>(1, h / 2) - y / 2) *
                              3;
          require(std::fwrite(half.rgb.data(), 1, keep, next.get()) == keep,
                  path + ": writing a pyramid level failed (disk full?)");
        }
      }
      writer.end_level();
      if (last) break;
      std::rewind(next.get());
      source = std::move(next);
    }
    writer.close();
  }
  std::filesystem::rename(partial, path);
  temporaries.paths.erase(temporaries.paths.begin());
}

}  // namespace histocnn
