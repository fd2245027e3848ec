#include "data/tiff_slide.h"

#include <tiffio.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/error.h"
#include "data/tiff_image.h"
#include "data/tile_cache.h"

namespace histocnn {
namespace {

struct TiffHandleCloser {
  void operator()(TIFF* tiff) const { TIFFClose(tiff); }
};
using TiffHandle = std::unique_ptr<TIFF, TiffHandleCloser>;

// Where one level's tiles are, and how to decode them.
struct LevelDirectory {
  tdir_t directory = 0;
  uint32_t tile_w = 0, tile_h = 0;
  bool jpeg_ycbcr = false;  // libjpeg converts to RGB (JPEGCOLORMODE_RGB)
};

// Why the current directory's tiles cannot be decoded directly ("" if they can).
std::string undecodable(TIFF* tiff) {
  if (!TIFFIsTiled(tiff)) return "not tiled";
  uint16_t bits = 0, samples = 0, planar = 0, photometric = 0, compression = 0, format = 0;
  TIFFGetFieldDefaulted(tiff, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_COMPRESSION, &compression);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_SAMPLEFORMAT, &format);
  if (!TIFFGetField(tiff, TIFFTAG_PHOTOMETRIC, &photometric)) return "no photometric tag";
  if (bits != 8 || samples != 3 || planar != PLANARCONFIG_CONTIG || format != SAMPLEFORMAT_UINT)
    return "not 8-bit RGB in one plane";
  const bool jpeg = compression == COMPRESSION_JPEG;
  if (!jpeg && compression != COMPRESSION_NONE && compression != COMPRESSION_LZW &&
      compression != COMPRESSION_ADOBE_DEFLATE && compression != COMPRESSION_DEFLATE)
    return "compression " + std::to_string(compression);
  if (photometric == PHOTOMETRIC_RGB || (jpeg && photometric == PHOTOMETRIC_YCBCR)) return "";
  return "photometric " + std::to_string(photometric);
}

// Whether one of the current directory's tiles has no bytes. Aperio's
// scanners leave some; OpenSlide paints such a tile, and every tile of a
// coarser level that covers one, from the finer level. A slide with any is
// left to OpenSlide whole, so its pixels stay OpenSlide's.
bool has_empty_tile(TIFF* tiff) {
  uint64_t* byte_counts = nullptr;
  if (!TIFFGetField(tiff, TIFFTAG_TILEBYTECOUNTS, &byte_counts) || !byte_counts) return true;
  const ttile_t tiles = TIFFNumberOfTiles(tiff);
  for (ttile_t i = 0; i < tiles; ++i)
    if (byte_counts[i] == 0) return true;
  return false;
}

// The tiled directory of each level (matched by its dimensions), or why not.
std::string find_levels(TIFF* tiff, const std::vector<SlideLevel>& levels,
                        std::vector<LevelDirectory>* out) {
  out->assign(levels.size(), {});
  std::vector<bool> found(levels.size(), false);
  do {
    uint32_t w = 0, h = 0;
    TIFFGetField(tiff, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tiff, TIFFTAG_IMAGELENGTH, &h);
    for (size_t l = 0; l < levels.size(); ++l) {
      if (found[l] || levels[l].width != w || levels[l].height != h || !TIFFIsTiled(tiff)) continue;
      if (std::string why = undecodable(tiff); !why.empty())
        return "level " + std::to_string(l) + ": " + why;
      if (has_empty_tile(tiff))
        return "level " + std::to_string(l) + ": tiles without data (OpenSlide paints them)";
      LevelDirectory& d = (*out)[l];
      d.directory = TIFFCurrentDirectory(tiff);
      TIFFGetField(tiff, TIFFTAG_TILEWIDTH, &d.tile_w);
      TIFFGetField(tiff, TIFFTAG_TILELENGTH, &d.tile_h);
      uint16_t compression = 0, photometric = 0;
      TIFFGetFieldDefaulted(tiff, TIFFTAG_COMPRESSION, &compression);
      TIFFGetField(tiff, TIFFTAG_PHOTOMETRIC, &photometric);
      d.jpeg_ycbcr = compression == COMPRESSION_JPEG && photometric == PHOTOMETRIC_YCBCR;
      if (d.tile_w == 0 || d.tile_h == 0 || d.tile_w > 4096 || d.tile_h > 4096)
        return "level " + std::to_string(l) + ": tiles of " + std::to_string(d.tile_w) + "x" +
               std::to_string(d.tile_h);
      found[l] = true;
      break;
    }
  } while (TIFFReadDirectory(tiff));
  for (size_t l = 0; l < levels.size(); ++l)
    if (!found[l]) return "level " + std::to_string(l) + ": no tiled directory of its size";
  return "";
}

class DirectTiffSlide final : public Slide {
 public:
  DirectTiffSlide(std::unique_ptr<Slide> fallback, std::vector<LevelDirectory> directories,
                  size_t cache_bytes)
      : fallback_(std::move(fallback)),
        directories_(std::move(directories)),
        free_handles_(directories_.size()),
        cache_(cache_bytes) {
    path_ = fallback_->path();
    format_ = fallback_->format();
    reader_ = "direct-tiff";
    levels_ = fallback_->levels();
    mpp_x_ = fallback_->mpp_x();
    mpp_y_ = fallback_->mpp_y();
  }

  Image read_region(int level, int64_t x, int64_t y, int w, int h) const override {
    require_slide_region(path_, level, int(levels_.size()), w, h);
    const double ds = levels_[size_t(level)].downsample;
    const std::optional<int64_t> lx = level_pixel(x, ds), ly = level_pixel(y, ds);
    if (!lx || !ly) return fallback_->read_region(level, x, y, w, h);
    return copy_tiles(level, *lx, *ly, w, h);
  }

  // The level pixel whose level-0 position rounds to x (|x - k ds| <= 1/2),
  // if any. With a whole downsample that is exact alignment, OpenSlide's
  // copy; with a fractional one (a level of odd size: 8.0094) it is the
  // pixel a whole level-0 coordinate can name, where OpenSlide would
  // resample by the fraction. Elsewhere (between level pixels): OpenSlide.
  static std::optional<int64_t> level_pixel(int64_t x, double ds) {
    const double k = std::round(double(x) / ds);
    if (std::fabs(k) > 1e15 || std::fabs(double(x) - k * ds) > 0.5 + 1e-9) return std::nullopt;
    return int64_t(k);
  }

 private:
  // The w x h pixels of `level` at (x0, y0) in its own pixels; white outside.
  Image copy_tiles(int level, int64_t x0, int64_t y0, int w, int h) const {
    const SlideLevel& size = levels_[size_t(level)];
    const LevelDirectory& d = directories_[size_t(level)];
    const FrameGrid grid{size.width, size.height, int(d.tile_w), int(d.tile_h)};
    return copy_from_tiles(grid, x0, y0, w, h,
                           [&](int64_t tx, int64_t ty) { return tile_at(level, tx, ty); });
  }

  std::shared_ptr<const DecodedTile> tile_at(int level, int64_t tx, int64_t ty) const {
    const uint64_t key = TileCache::key(level, tx, ty);
    if (auto tile = cache_.find(key)) return tile;
    const LevelDirectory& d = directories_[size_t(level)];
    auto tile = std::make_shared<DecodedTile>(size_t(d.tile_w) * d.tile_h * 3);
    TiffHandle tiff = take_handle(level);
    tiff_errors_to_this_thread();
    const ttile_t index =
        TIFFComputeTile(tiff.get(), uint32_t(tx * d.tile_w), uint32_t(ty * d.tile_h), 0, 0);
    if (TIFFReadEncodedTile(tiff.get(), index, tile->data(), tmsize_t(tile->size())) < 0)
      fail(path_ + ": cannot decode tile " + std::to_string(tx) + "," + std::to_string(ty) +
           " of level " + std::to_string(level) + " (" + last_tiff_error_message() + ")");
    give_back(level, std::move(tiff));
    cache_.put(key, tile);
    return tile;
  }

  // A handle positioned on the level's directory: libtiff handles are not
  // thread-safe, so each read takes one from the level's pool.
  TiffHandle take_handle(int level) const {
    {
      std::lock_guard<std::mutex> lock(handles_mutex_);
      auto& pool = free_handles_[size_t(level)];
      if (!pool.empty()) {
        TiffHandle tiff = std::move(pool.back());
        pool.pop_back();
        return tiff;
      }
    }
    tiff_errors_to_this_thread();
    TiffHandle tiff(TIFFOpen(path_.c_str(), "r"));
    const LevelDirectory& d = directories_[size_t(level)];
    if (!tiff || !TIFFSetDirectory(tiff.get(), d.directory))
      fail(path_ + ": cannot reopen level " + std::to_string(level) + " (" +
           last_tiff_error_message() + ")");
    if (d.jpeg_ycbcr) TIFFSetField(tiff.get(), TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    return tiff;
  }
  void give_back(int level, TiffHandle tiff) const {
    std::lock_guard<std::mutex> lock(handles_mutex_);
    free_handles_[size_t(level)].push_back(std::move(tiff));
  }

  std::unique_ptr<Slide> fallback_;
  std::vector<LevelDirectory> directories_;
  mutable std::mutex handles_mutex_;
  mutable std::vector<std::vector<TiffHandle>> free_handles_;
  mutable TileCache cache_;
};

// Records why `slide` stays with OpenSlide (and says so on stderr when
// HISTOCNN_VERBOSE is set).
void say_why(Slide& slide, const std::string& why) {
  slide.set_reader_note("OpenSlide reads it: " + why);
  const char* verbose = std::getenv("HISTOCNN_VERBOSE");
  if (verbose && *verbose && std::string(verbose) != "0")
    std::fprintf(stderr, "%s: read through OpenSlide (%s)\n", slide.path().c_str(), why.c_str());
}

}  // namespace

std::unique_ptr<Slide> with_direct_tiff_reads(std::unique_ptr<Slide> openslide,
                                              size_t cache_bytes) {
  const std::string& path = openslide->path();
  tiff_errors_to_this_thread();
  TiffHandle tiff(TIFFOpen(path.c_str(), "r"));
  if (!tiff) {
    say_why(*openslide, "libtiff cannot open it: " + last_tiff_error_message());
    return openslide;
  }
  for (const SlideLevel& level : openslide->levels())
    if (level.width > (int64_t(1) << 28) || level.height > (int64_t(1) << 28)) {
      say_why(*openslide, "a level over 2^28 pixels a side");
      return openslide;
    }
  std::vector<LevelDirectory> directories;
  if (std::string why = find_levels(tiff.get(), openslide->levels(), &directories); !why.empty()) {
    say_why(*openslide, why);
    return openslide;
  }
  return std::make_unique<DirectTiffSlide>(std::move(openslide), std::move(directories),
                                           cache_bytes);
}

}  // namespace histocnn
