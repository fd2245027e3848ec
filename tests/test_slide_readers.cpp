// The slide readers against the pixels libtiff decodes (the way OpenSlide 3.4
// decodes a tile): the direct TIFF reader on a generic pyramid and on an
// Aperio .svs layout (a stripped thumbnail between the levels, 4x levels,
// RGB-coded JPEG tiles, the scale in the description), and what it leaves to
// OpenSlide (reads between level pixels, slides with tiles without data).
#include <gtest/gtest.h>
#include <tiffio.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/error.h"
#include "data/slide.h"
#include "data/slide_writer.h"
#include "data/synth_slide.h"
#include "test_util.h"
#include "tiff_file.h"

namespace histocnn {
namespace {

// Every directory of a TIFF (the levels, and an .svs's thumbnail) decoded
// whole by libtiff's RGBA interface (the way OpenSlide 3.4 decodes tiles):
// the truth the direct reader must copy.
std::vector<Image> levels_by_libtiff(const std::string& path) {
  std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen(path.c_str(), "r"), TIFFClose);
  std::vector<Image> levels;
  do {
    levels.push_back(testing::read_rgba_page(tiff.get()));
  } while (TIFFReadDirectory(tiff.get()));
  return levels;
}

// The w x h pixels of `level` at (x, y) in its own pixels, white outside.
Image crop_or_white(const Image& level, int64_t x, int64_t y, int w, int h) {
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.assign(size_t(w) * h * 3, 255);
  for (int r = 0; r < h; ++r)
    for (int c = 0; c < w; ++c) {
      const int64_t sx = x + c, sy = y + r;
      if (sx < 0 || sy < 0 || sx >= level.width || sy >= level.height) continue;
      std::memcpy(out.row(r) + c * 3, level.row(int(sy)) + sx * 3, 3);
    }
  return out;
}

struct LevelRead {
  int level;
  int64_t lx, ly;  // in level pixels
  int w, h;
};

// Each read of the direct reader against its level decoded whole, and
// against OpenSlide where the level's downsample is whole (there OpenSlide
// copies the same pixels; a fractional one it resamples).
void expect_reads_copy_levels(const Slide& direct, const Slide& openslide,
                              const std::vector<Image>& truth,
                              const std::vector<LevelRead>& reads) {
  for (const LevelRead& r : reads) {
    const double ds = direct.levels()[size_t(r.level)].downsample;
    const int64_t x = std::llround(r.lx * ds), y = std::llround(r.ly * ds);
    const Image got = direct.read_region(r.level, x, y, r.w, r.h);
    const Image want = crop_or_white(truth[size_t(r.level)], r.lx, r.ly, r.w, r.h);
    EXPECT_EQ(got.rgb, want.rgb) << "level " << r.level << " at " << r.lx << "," << r.ly;
    if (ds == std::floor(ds)) {
      EXPECT_EQ(got.rgb, openslide.read_region(r.level, x, y, r.w, r.h).rgb)
          << "level " << r.level << " at " << r.lx << "," << r.ly;
    }
  }
}

TEST(Slide, DirectTiffReadsCopyTheLevelPixelsOpenSlideDecodes) {
  testing::TempDir dir;
  SynthSlideOptions o;
  o.width = 3000;
  o.height = 1700;  // levels 1500x850 and 750x425 (downsamples 2, 4), 375x212 (8.0094)
  o.pieces = 2;
  write_synthetic_slide(dir / "s.tif", o);
  const auto direct = open_slide(dir / "s.tif");
  const auto openslide = open_slide(dir / "s.tif", 0, SlideReader::openslide);
  EXPECT_EQ(direct->reader(), "direct-tiff");
  EXPECT_EQ(openslide->reader(), "openslide");
  EXPECT_EQ(direct->format(), "generic-tiff");
  ASSERT_EQ(direct->levels().size(), 4u);
  EXPECT_GT(direct->levels()[3].downsample, 8.0);  // fractional: (8 + 1700 / 212) / 2
  const std::vector<Image> truth = levels_by_libtiff(dir / "s.tif");
  ASSERT_EQ(truth.size(), 4u);
  // Inside, across tile edges (256), at the slide's right and bottom edges,
  // past them and before the origin (white).
  expect_reads_copy_levels(*direct, *openslide, truth,
                           {{0, 1000, 600, 64, 64},
                            {0, 250, 250, 300, 20},
                            {0, 2900, 1650, 200, 90},
                            {0, -10, -5, 40, 30},
                            {1, 255, 511, 258, 3},
                            {1, 1400, 800, 150, 100},
                            {2, 0, 0, 750, 425},
                            {2, 700, 400, 80, 40},
                            {3, 3, 7, 300, 200},
                            {3, 100, 50, 16, 16}});
  // Between level pixels the direct reader hands the read to OpenSlide.
  EXPECT_EQ(direct->read_region(1, 1001, 601, 40, 30).rgb,
            openslide->read_region(1, 1001, 601, 40, 30).rgb);
  // Many threads at once (libtiff handles are per thread, the cache shared).
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        const int64_t lx = (t * 97 + i * 61) % 1400, ly = (t * 53 + i * 37) % 800;
        const Image got = direct->read_region(1, lx * 2, ly * 2, 70, 50);
        if (got.rgb != crop_or_white(truth[1], lx, ly, 70, 50).rgb) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_THROW(direct->read_region(4, 0, 0, 8, 8), Error);
  EXPECT_THROW(direct->read_region(0, 0, 0, 0, 8), Error);
}

TEST(Slide, AperioSvsIsReadDirectlyAsOpenSlideDecodesIt) {
  testing::TempDir dir;
  SynthSlideOptions o;
  o.width = 3000;
  o.height = 1700;
  o.pieces = 2;
  o.layout = SlideLayout::aperio;
  write_synthetic_slide(dir / "s.svs", o);
  const auto direct = open_slide(dir / "s.svs");
  const auto openslide = open_slide(dir / "s.svs", 0, SlideReader::openslide);
  EXPECT_EQ(direct->format(), "aperio");
  EXPECT_EQ(direct->reader(), "direct-tiff");
  EXPECT_NEAR(direct->mpp_x(), 0.62005, 1e-9);  // the description's MPP
  EXPECT_NEAR(direct->mpp_y(), 0.62005, 1e-9);
  // Levels a quarter of the one before: 3000x1700, 750x425, 187x106.
  ASSERT_EQ(direct->levels().size(), 3u);
  EXPECT_EQ(direct->levels()[1].width, 750);
  EXPECT_EQ(direct->levels()[1].height, 425);
  EXPECT_DOUBLE_EQ(direct->levels()[1].downsample, 4.0);
  EXPECT_EQ(direct->levels()[2].width, 187);
  EXPECT_EQ(direct->levels()[2].height, 106);
  // The directories: level 0, the stripped thumbnail, levels 1 and 2.
  const std::vector<Image> directories = levels_by_libtiff(dir / "s.svs");
  ASSERT_EQ(directories.size(), 4u);
  const Image& thumbnail = directories[1];
  ASSERT_EQ(thumbnail.width, 750);
  ASSERT_EQ(thumbnail.height, 425);
  // A 4x4 box average of level 0, so close to level 1 (two 2x2 halvings;
  // both JPEG-coded): the mean difference is a few levels at most.
  double difference = 0;
  for (size_t i = 0; i < thumbnail.rgb.size(); ++i)
    difference += std::abs(int(thumbnail.rgb[i]) - int(directories[2].rgb[i]));
  EXPECT_LT(difference / double(thumbnail.rgb.size()), 4.0);
  expect_reads_copy_levels(*direct, *openslide, {directories[0], directories[2], directories[3]},
                           {{0, 1000, 600, 64, 64},
                            {0, 250, 250, 300, 20},
                            {0, 2900, 1650, 200, 90},
                            {1, 255, 255, 258, 3},
                            {1, 700, 400, 80, 40},
                            {2, 3, 7, 300, 200}});
}

// A one-level tiled TIFF of 512x512 in 256-pixel tiles, grey; with
// `without_last_tile` the bottom-right tile is never written, so its byte
// count stays 0 (as in Aperio slides with missing tiles).
void write_tiled_tiff(const std::string& path, bool without_last_tile) {
  std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen(path.c_str(), "w"), TIFFClose);
  ASSERT_TRUE(tiff);
  TIFF* t = tiff.get();
  testing::set_rgb8_fields(t, 512, 512, COMPRESSION_NONE);
  TIFFSetField(t, TIFFTAG_TILEWIDTH, uint32_t(256));
  TIFFSetField(t, TIFFTAG_TILELENGTH, uint32_t(256));
  std::vector<uint8_t> tile(256 * 256 * 3, 180);
  for (uint32_t y : {0u, 256u})
    for (uint32_t x : {0u, 256u})
      if (!(without_last_tile && x == 256 && y == 256)) {
        ASSERT_GE(TIFFWriteTile(t, tile.data(), x, y, 0, 0), 0);
      }
}

TEST(Slide, ASlideWithTilesWithoutDataIsLeftToOpenSlide) {
  testing::TempDir dir;
  write_tiled_tiff(dir / "whole.tif", false);
  write_tiled_tiff(dir / "holed.tif", true);
  const auto whole = open_slide(dir / "whole.tif");
  EXPECT_EQ(whole->format(), "generic-tiff");
  EXPECT_EQ(whole->reader(), "direct-tiff");
  const auto holed = open_slide(dir / "holed.tif");
  EXPECT_EQ(holed->format(), "generic-tiff");
  EXPECT_EQ(holed->reader(), "openslide");
  EXPECT_EQ(whole->reader_note(), "");
  EXPECT_EQ(holed->reader_note(),
            "OpenSlide reads it: level 0: tiles without data (OpenSlide paints them)");
  EXPECT_EQ(holed->read_region(0, 0, 0, 32, 32).rgb, whole->read_region(0, 0, 0, 32, 32).rgb);
}

}  // namespace
}  // namespace histocnn
