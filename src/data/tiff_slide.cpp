#include "data/tiff_slide.h"

#include <tiffio.h>

#include <algorithm>
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
  tdir_t directory = 0;        // in the main chain, when subifd_offset is 0
  uint64_t subifd_offset = 0;  // a SubIFD: its file offset
  uint32_t tile_w = 0, tile_h = 0;
  bool jpeg_ycbcr = false;  // libjpeg converts to RGB (JPEGCOLORMODE_RGB)
  bool planes = false;      // R, G and B in separate tiles (PLANARCONFIG_SEPARATE)
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
  if (bits != 8 || samples != 3 || format != SAMPLEFORMAT_UINT) return "not 8-bit RGB";
  const bool jpeg = compression == COMPRESSION_JPEG;
  if (!jpeg && compression != COMPRESSION_NONE && compression != COMPRESSION_LZW &&
      compression != COMPRESSION_ADOBE_DEFLATE && compression != COMPRESSION_DEFLATE)
    return "compression " + std::to_string(compression);
  // Three planes (Bio-Formats' and QuPath's OME-TIFF unless told to
  // interleave): each tile is three single-channel tiles.
  if (planar == PLANARCONFIG_SEPARATE && photometric == PHOTOMETRIC_RGB) return "";
  if (planar != PLANARCONFIG_CONTIG) return "planar configuration " + std::to_string(planar);
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

// The current directory as a level this reader decodes, or why not ("" if
// it is one).
std::string describe_level(TIFF* tiff, LevelDirectory* d) {
  if (std::string why = undecodable(tiff); !why.empty()) return why;
  if (has_empty_tile(tiff)) return "tiles without data (OpenSlide paints them)";
  TIFFGetField(tiff, TIFFTAG_TILEWIDTH, &d->tile_w);
  TIFFGetField(tiff, TIFFTAG_TILELENGTH, &d->tile_h);
  uint16_t compression = 0, photometric = 0, planar = 0;
  TIFFGetFieldDefaulted(tiff, TIFFTAG_COMPRESSION, &compression);
  TIFFGetField(tiff, TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetFieldDefaulted(tiff, TIFFTAG_PLANARCONFIG, &planar);
  d->jpeg_ycbcr = compression == COMPRESSION_JPEG && photometric == PHOTOMETRIC_YCBCR;
  d->planes = planar == PLANARCONFIG_SEPARATE;
  if (d->tile_w == 0 || d->tile_h == 0 || d->tile_w > 4096 || d->tile_h > 4096)
    return "tiles of " + std::to_string(d->tile_w) + "x" + std::to_string(d->tile_h);
  return "";
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
      LevelDirectory& d = (*out)[l];
      d.directory = TIFFCurrentDirectory(tiff);
      if (std::string why = describe_level(tiff, &d); !why.empty())
        return "level " + std::to_string(l) + ": " + why;
      found[l] = true;
      break;
    }
  } while (TIFFReadDirectory(tiff));
  for (size_t l = 0; l < levels.size(); ++l)
    if (!found[l]) return "level " + std::to_string(l) + ": no tiled directory of its size";
  return "";
}

void add_to_note(std::string* note, const std::string& what) {
  *note += (note->empty() ? "" : "; ") + what;
}

// A pyramid in level 0's SubIFDs (OME-TIFF's layout, and libvips'
// `--subifd`): the reduced levels, largest first, each strictly smaller
// than the one before, with their directories. Returns what was passed
// over ("" if nothing): a SubIFD that is not a level this reader decodes is
// left out, and the pyramid has one level fewer.
std::string subifd_levels(TIFF* tiff, const LevelDirectory& level0, const SlideLevel& size0,
                          std::vector<SlideLevel>* levels, std::vector<LevelDirectory>* out) {
  constexpr uint16_t kMaxSubifds = 32;
  if (!TIFFSetDirectory(tiff, level0.directory)) return "";
  uint16_t count = 0;
  uint64_t* offsets = nullptr;
  if (!TIFFGetField(tiff, TIFFTAG_SUBIFD, &count, &offsets) || !offsets || count == 0) return "";
  // Copied: the array belongs to the directory being read.
  const std::vector<uint64_t> subifds(offsets, offsets + std::min(count, kMaxSubifds));
  struct Found {
    SlideLevel size;
    LevelDirectory directory;
  };
  std::vector<Found> found;
  std::string passed_over;
  for (size_t i = 0; i < subifds.size(); ++i) {
    const std::string name = "SubIFD " + std::to_string(i);
    if (subifds[i] == 0 || !TIFFSetSubDirectory(tiff, subifds[i])) {
      add_to_note(&passed_over, name + ": unreadable");
      continue;
    }
    uint32_t w = 0, h = 0;
    TIFFGetField(tiff, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tiff, TIFFTAG_IMAGELENGTH, &h);
    Found f{{w, h, 1.0}, {}};
    f.directory.subifd_offset = subifds[i];
    std::string why = !TIFFIsTiled(tiff) ? "not tiled" : describe_level(tiff, &f.directory);
    if (why.empty() && (w == 0 || h == 0 || w >= size0.width || h >= size0.height))
      why = std::to_string(w) + "x" + std::to_string(h) + " is not smaller than level 0";
    if (!why.empty()) {
      add_to_note(&passed_over, name + ": " + why);
      continue;
    }
    // OpenSlide's downsample of a level: the mean of the two axes' ratios.
    f.size.downsample = (double(size0.width) / w + double(size0.height) / h) / 2;
    found.push_back(f);
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.size.width > b.size.width; });
  for (const Found& f : found) {
    if (f.size.width >= levels->back().width || f.size.height >= levels->back().height) {
      add_to_note(&passed_over, "a SubIFD of " + std::to_string(f.size.width) + "x" +
                                    std::to_string(f.size.height) +
                                    " is not smaller than the level before");
      continue;
    }
    levels->push_back(f.size);
    out->push_back(f.directory);
  }
  return passed_over;
}

class DirectTiffSlide final : public Slide {
 public:
  // levels: the fallback's first `fallback_levels` levels, then any only
  // this reader has (a SubIFD pyramid's); directories: one per level.
  DirectTiffSlide(std::unique_ptr<Slide> fallback, std::vector<SlideLevel> levels,
                  int fallback_levels, std::vector<LevelDirectory> directories, size_t cache_bytes)
      : fallback_(std::move(fallback)),
        fallback_levels_(fallback_levels),
        directories_(std::move(directories)),
        free_handles_(directories_.size()),
        cache_(cache_bytes) {
    path_ = fallback_->path();
    format_ = fallback_->format();
    reader_ = "direct-tiff";
    reader_note_ = fallback_->reader_note();
    levels_ = std::move(levels);
    mpp_x_ = fallback_->mpp_x();
    mpp_y_ = fallback_->mpp_y();
  }

  Image read_region(int level, int64_t x, int64_t y, int w, int h) const override {
    require_slide_region(path_, level, int(levels_.size()), w, h);
    const double ds = levels_[size_t(level)].downsample;
    std::optional<int64_t> lx = level_pixel(x, ds), ly = level_pixel(y, ds);
    if (!lx || !ly) {
      if (level < fallback_levels_) return fallback_->read_region(level, x, y, w, h);
      // A level OpenSlide does not have: the nearest level pixel (less than
      // half of one off; the tiling always starts on one).
      lx = std::llround(double(x) / ds);
      ly = std::llround(double(y) / ds);
    }
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
    const uint32_t x = uint32_t(tx * d.tile_w), y = uint32_t(ty * d.tile_h);
    auto decode = [&](uint16_t plane, uint8_t* into, size_t bytes) {
      const ttile_t index = TIFFComputeTile(tiff.get(), x, y, 0, plane);
      if (TIFFReadEncodedTile(tiff.get(), index, into, tmsize_t(bytes)) < 0)
        fail(path_ + ": cannot decode tile " + std::to_string(tx) + "," + std::to_string(ty) +
             " of level " + std::to_string(level) + " (" + last_tiff_error_message() + ")");
    };
    if (!d.planes) {
      decode(0, tile->data(), tile->size());
    } else {
      const size_t pixels = size_t(d.tile_w) * d.tile_h;
      std::vector<uint8_t> plane(pixels);
      for (uint16_t c = 0; c < 3; ++c) {
        decode(c, plane.data(), pixels);
        uint8_t* out = tile->data() + c;
        for (size_t i = 0; i < pixels; ++i) out[3 * i] = plane[i];
      }
    }
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
    if (!tiff || !(d.subifd_offset ? TIFFSetSubDirectory(tiff.get(), d.subifd_offset)
                                   : TIFFSetDirectory(tiff.get(), d.directory)))
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
  int fallback_levels_;
  std::vector<LevelDirectory> directories_;
  mutable std::mutex handles_mutex_;
  mutable std::vector<std::vector<TiffHandle>> free_handles_;
  mutable TileCache cache_;
};

// Records why `slide` stays with OpenSlide, or (left_to_openslide false)
// what the direct reader passed over, and says so on stderr when
// HISTOCNN_VERBOSE is set.
void say_why(Slide& slide, const std::string& why, bool left_to_openslide = true) {
  slide.set_reader_note(left_to_openslide ? "OpenSlide reads it: " + why : why);
  const char* verbose = std::getenv("HISTOCNN_VERBOSE");
  if (verbose && *verbose && std::string(verbose) != "0")
    std::fprintf(stderr, "%s: %s\n", slide.path().c_str(),
                 (left_to_openslide ? "read through OpenSlide (" + why + ")" : why).c_str());
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
  std::vector<SlideLevel> levels = openslide->levels();
  int fallback_levels = int(levels.size());
  std::vector<SlideLevel> pyramid{levels[0]};
  std::vector<LevelDirectory> pyramid_directories{directories[0]};
  const std::string passed_over =
      subifd_levels(tiff.get(), directories[0], levels[0], &pyramid, &pyramid_directories);
  if (pyramid.size() > 1) {
    // Level 0's SubIFDs are its pyramid; OpenSlide's other levels, if any,
    // are directories of the main chain, which such a file uses for other
    // images. OpenSlide reads level 0 alone.
    levels = std::move(pyramid);
    directories = std::move(pyramid_directories);
    fallback_levels = 1;
  }
  if (!passed_over.empty()) say_why(*openslide, "not pyramid levels: " + passed_over, false);
  return std::make_unique<DirectTiffSlide>(std::move(openslide), std::move(levels), fallback_levels,
                                           std::move(directories), cache_bytes);
}

}  // namespace histocnn
