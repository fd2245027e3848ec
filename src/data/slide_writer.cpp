#include "data/slide_writer.h"

#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/tiff_image.h"

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

// Level-0 strips averaged into a thumbnail of at most 1024 pixels a side
// (factor x factor boxes; the last row and column of boxes may be partial).
class ThumbnailSums {
 public:
  ThumbnailSums(int64_t width, int64_t height) {
    while (std::max(width, height) > 1024 * factor_) factor_ *= 2;
    width_ = int((width + factor_ - 1) / factor_);
    height_ = int((height + factor_ - 1) / factor_);
    sums_.assign(size_t(width_) * height_ * 3, 0);
    counts_.assign(size_t(width_) * height_, 0);
  }
  void add(const Image& strip, int64_t y) {
    for (int r = 0; r < strip.height; ++r) {
      const size_t row = size_t((y + r) / factor_) * width_;
      for (int x = 0; x < strip.width; ++x) {
        const size_t at = row + size_t(x / factor_);
        for (int c = 0; c < 3; ++c) sums_[3 * at + c] += strip.row(r)[3 * x + c];
        ++counts_[at];
      }
    }
  }
  Image image() const {
    Image out;
    out.width = width_;
    out.height = height_;
    out.rgb.resize(sums_.size());
    for (size_t i = 0; i < sums_.size(); ++i) {
      const uint64_t n = std::max<uint32_t>(1, counts_[i / 3]);
      out.rgb[i] = uint8_t((sums_[i] + n / 2) / n);
    }
    return out;
  }

 private:
  int64_t factor_ = 1;
  int width_ = 0, height_ = 0;
  std::vector<uint64_t> sums_;
  std::vector<uint32_t> counts_;
};

// What an Aperio scanner writes into every directory's ImageDescription:
// the first line names the library (OpenSlide's test for the format), the
// second the baseline size, its tiles and, for other images, their size;
// level 0 adds the fields OpenSlide reads (AppMag, MPP).
std::string aperio_description(int64_t width, int64_t height, const SlideWriterOptions& o,
                               int64_t image_width, int64_t image_height) {
  std::string d = "Aperio Image Library (histocnn synthetic slide)\r\n" + std::to_string(width) +
                  "x" + std::to_string(height) + " [0,0 " + std::to_string(width) + "x" +
                  std::to_string(height) + "] (" + std::to_string(o.tile) + "x" +
                  std::to_string(o.tile) + ")";
  if (image_width != width || image_height != height)
    d += " -> " + std::to_string(image_width) + "x" + std::to_string(image_height);
  d += " JPEG/RGB Q=" + std::to_string(o.quality);
  if (image_width == width && image_height == height) {
    char scale[64];
    std::snprintf(scale, sizeof scale, "|AppMag = %d|MPP = %.5f",
                  std::max(1, int(std::lround(10 / o.mpp))), o.mpp);
    d += scale;
  }
  return d;
}

// The OME-XML of an RGB image of width x height pixels of `mpp` microns,
// stored from IFD 0, as Bio-Formats writes a brightfield slide.
std::string ome_description(int64_t width, int64_t height, double mpp) {
  char scale[64];
  std::snprintf(scale, sizeof scale, "%.9g", mpp);
  const std::string um = "\xC2\xB5m";  // U+00B5, as Bio-Formats writes it
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
         "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" "
         "Creator=\"histocnn synthetic slide\">"
         "<Image ID=\"Image:0\" Name=\"synthetic slide\">"
         "<Pixels BigEndian=\"false\" DimensionOrder=\"XYCZT\" ID=\"Pixels:0\" "
         "Interleaved=\"true\" PhysicalSizeX=\"" +
         std::string(scale) + "\" PhysicalSizeXUnit=\"" + um + "\" PhysicalSizeY=\"" +
         std::string(scale) + "\" PhysicalSizeYUnit=\"" + um +
         "\" SignificantBits=\"8\" SizeC=\"3\" SizeT=\"1\" SizeX=\"" + std::to_string(width) +
         "\" SizeY=\"" + std::to_string(height) +
         "\" SizeZ=\"1\" Type=\"uint8\">"
         "<Channel ID=\"Channel:0:0\" SamplesPerPixel=\"3\"><LightPath/></Channel>"
         "<TiffData FirstC=\"0\" FirstT=\"0\" FirstZ=\"0\" IFD=\"0\" PlaneCount=\"1\"/>"
         "</Pixels></Image></OME>";
}

// How many halvings the pyramid has below level 0: until a level is at most
// 512 pixels a side.
int reduced_levels(int64_t width, int64_t height) {
  int count = 0;
  while (std::max(std::max<int64_t>(1, width >> count), std::max<int64_t>(1, height >> count)) >
         512)
    ++count;
  return count;
}

// Writes the TIFF at `file` (the temporary); errors name `name` (the slide
// the user asked for) with what libtiff said, in one line: libtiff's own
// messages go to the Error, not to stderr.
class PyramidWriter {
 public:
  PyramidWriter(const std::string& file, const std::string& name, bool big,
                const SlideWriterOptions& o)
      : path_(name), options_(o) {
    tiff_errors_to_this_thread();
    tiff_ = TIFFOpen(file.c_str(), big ? "w8" : "w");
    if (!tiff_) fail(name + ": cannot write a TIFF here (" + last_tiff_error_message() + ")");
  }
  ~PyramidWriter() {
    if (tiff_) TIFFClose(tiff_);
  }
  PyramidWriter(const PyramidWriter&) = delete;
  PyramidWriter& operator=(const PyramidWriter&) = delete;

  // `description` goes into ImageDescription when not empty; `subifds`
  // (level 0 of the OME layout): the directories written next are this
  // one's SubIFDs (libtiff fills in their offsets).
  void begin_level(int64_t width, int64_t height, int level, const std::string& description,
                   int subifds = 0) {
    width_ = width;
    TIFFSetField(tiff_, TIFFTAG_SUBFILETYPE, level ? FILETYPE_REDUCEDIMAGE : 0);
    set_jpeg_rgb(width, height, description);
    TIFFSetField(tiff_, TIFFTAG_TILEWIDTH, uint32_t(options_.tile));
    TIFFSetField(tiff_, TIFFTAG_TILELENGTH, uint32_t(options_.tile));
    if (options_.layout != SlideLayout::ome) {
      const double per_cm = 1e4 / (options_.mpp * double(int64_t(1) << level));
      TIFFSetField(tiff_, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
      TIFFSetField(tiff_, TIFFTAG_XRESOLUTION, float(per_cm));
      TIFFSetField(tiff_, TIFFTAG_YRESOLUTION, float(per_cm));
    }
    if (subifds > 0) {
      std::vector<uint64_t> offsets(size_t(subifds), 0);
      TIFFSetField(tiff_, TIFFTAG_SUBIFD, uint16_t(subifds), offsets.data());
    }
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
          failed("writing a tile");
      }
  }
  void end_level() {
    if (!TIFFWriteDirectory(tiff_)) failed("writing a pyramid level");
  }
  // A stripped directory holding `image` (an Aperio thumbnail).
  void write_stripped(const Image& image, const std::string& description) {
    TIFFSetField(tiff_, TIFFTAG_SUBFILETYPE, FILETYPE_REDUCEDIMAGE);
    set_jpeg_rgb(image.width, image.height, description);
    TIFFSetField(tiff_, TIFFTAG_ROWSPERSTRIP, uint32_t(16));
    for (int y = 0; y < image.height; ++y)
      if (TIFFWriteScanline(tiff_, const_cast<uint8_t*>(image.row(y)), uint32_t(y), 0) < 0)
        failed("writing the thumbnail");
    end_level();
  }
  // TIFFClose cannot report a failed last write: flush first.
  void close() {
    if (!TIFFFlush(tiff_)) failed("finishing the file");
    TIFFClose(tiff_);
    tiff_ = nullptr;
  }

 private:
  [[noreturn]] void failed(const std::string& what) const {
    fail(path_ + ": " + what + " failed (" + last_tiff_error_message() + "; disk full?)");
  }
  // 8-bit RGB, JPEG: YCbCr-coded in the generic layout (smaller), RGB-coded
  // as Aperio's scanners write it.
  void set_jpeg_rgb(int64_t width, int64_t height, const std::string& description) {
    TIFFSetField(tiff_, TIFFTAG_IMAGEWIDTH, uint32_t(width));
    TIFFSetField(tiff_, TIFFTAG_IMAGELENGTH, uint32_t(height));
    TIFFSetField(tiff_, TIFFTAG_SAMPLESPERPIXEL, uint16_t(3));
    TIFFSetField(tiff_, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
    TIFFSetField(tiff_, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tiff_, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
    if (options_.layout == SlideLayout::aperio) {
      TIFFSetField(tiff_, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    } else {
      TIFFSetField(tiff_, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
      TIFFSetField(tiff_, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);  // we give RGB
    }
    TIFFSetField(tiff_, TIFFTAG_JPEGQUALITY, options_.quality);
    if (!description.empty()) TIFFSetField(tiff_, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
  }

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
    PyramidWriter writer(partial, path, width * height * 3 > (int64_t(1) << 31), o);
    const bool aperio = o.layout == SlideLayout::aperio, ome = o.layout == SlideLayout::ome;
    std::unique_ptr<ThumbnailSums> thumbnail;
    if (aperio) thumbnail = std::make_unique<ThumbnailSums>(width, height);
    File source;  // the level being halved, when it is a temporary
    for (int level = 0;; ++level) {
      const int64_t w = std::max<int64_t>(1, width >> level),
                    h = std::max<int64_t>(1, height >> level);
      // Aperio's levels are a quarter of the one before: every other halving.
      const bool written = !aperio || level % 2 == 0;
      const bool last = written && std::max(w, h) <= 512;
      File next;
      if (!last) {
        temporaries.paths.push_back(path + ".level" + std::to_string(level + 1) + ".raw");
        next.reset(std::fopen(temporaries.paths.back().c_str(), "w+b"));
        require(next != nullptr, temporaries.paths.back() + ": cannot write a temporary");
      }
      if (written && ome && level == 0)
        writer.begin_level(w, h, level, ome_description(width, height, o.mpp),
                           reduced_levels(width, height));
      else if (written)
        writer.begin_level(w, h, level, aperio ? aperio_description(width, height, o, w, h) : "");
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
        if (written) writer.write_strip(strip, y);
        if (level == 0 && thumbnail) thumbnail->add(strip, y);
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
      if (written) writer.end_level();
      if (level == 0 && thumbnail) {  // Aperio's second directory
        const Image small = thumbnail->image();
        writer.write_stripped(small,
                              aperio_description(width, height, o, small.width, small.height));
        thumbnail.reset();
      }
      if (last) break;
      std::rewind(next.get());
      source = std::move(next);
    }
    writer.close();
  }
  rename_into_place(partial, path);
  temporaries.paths.erase(temporaries.paths.begin());
}

}  // namespace histocnn
