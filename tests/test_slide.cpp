// Whole-slide pieces on their own: slide properties to microns per pixel,
// TIFF images, thumbnails in bounded pieces, tissue detection (Otsu, specks,
// holes), the tile grid at the model's scale, the read-ahead scorer, the
// outputs' statistics and the resume file's checks.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backends/backend.h"
#include "byte_taking_step.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "data/pen_ink.h"
#include "data/slide.h"
#include "data/synth.h"
#include "data/synth_slide.h"
#include "data/tiff_image.h"
#include "data/tissue.h"
#include "nn/params.h"
#include "slide/slide_outputs.h"
#include "slide/tile_scorer.h"
#include "slide/tiling.h"
#include "test_util.h"
#include "tiff_file.h"

namespace histocnn {
namespace {

// A slide drawn by a function of level-0 coordinates, with a pyramid of
// exact power-of-two levels; it counts and bounds the pixels read at once.
class DrawnSlide : public Slide {
 public:
  DrawnSlide(int64_t w, int64_t h, int levels, double mpp) {
    path_ = "drawn";
    format_ = "test";
    for (int l = 0; l < levels; ++l) levels_.push_back({w >> l, h >> l, double(1 << l)});
    mpp_x_ = mpp_y_ = mpp;
  }
  Image read_region(int level, int64_t x, int64_t y, int w, int h) const override {
    if (x == fail_at_x) throw Error("drawn: cannot read the slide (corrupt region)");
    {
      std::lock_guard lock(mutex_);
      largest_read = std::max<int64_t>(largest_read, int64_t(w) * h);
      levels_read.push_back(level);
    }
    Image out;
    out.width = w;
    out.height = h;
    out.rgb.resize(size_t(w) * h * 3);
    const double ds = levels_[level].downsample;
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        const int64_t x0 = x + int64_t(c * ds), y0 = y + int64_t(r * ds);
        const bool tissue = x0 < width() / 2 && x0 >= 0 && y0 >= 0 && y0 < height();
        uint8_t* p = out.row(r) + 3 * c;
        p[0] = tissue ? 200 : 250;
        p[1] = tissue ? 80 : 250;
        p[2] = tissue ? 160 : 250;
      }
    return out;
  }
  int64_t fail_at_x = -1;  // a read there fails, as a corrupt region does
  mutable std::mutex mutex_;
  mutable int64_t largest_read = 0;
  mutable std::vector<int> levels_read;
};

TEST(Slide, MicronsPerPixelFromOpenSlideOrTiffProperties) {
  EXPECT_EQ(mpp_from_properties({{"openslide.mpp-x", "0.25"}, {"openslide.mpp-y", "0.26"}}),
            std::make_pair(0.25, 0.26));
  const auto cm = mpp_from_properties({{"tiff.ResolutionUnit", "centimeter"},
                                       {"tiff.XResolution", "16129"},
                                       {"tiff.YResolution", "16129"}});
  EXPECT_NEAR(cm.first, 0.62, 1e-3);
  const auto inch = mpp_from_properties({{"tiff.ResolutionUnit", "inch"},
                                         {"tiff.XResolution", "101600"},
                                         {"tiff.YResolution", "101600"}});
  EXPECT_NEAR(inch.second, 0.25, 1e-9);
  EXPECT_EQ(mpp_from_properties({{"tiff.ResolutionUnit", "none"}, {"tiff.XResolution", "72"}}),
            std::make_pair(0.0, 0.0));
  EXPECT_EQ(mpp_from_properties({{"openslide.mpp-x", "garbage"}}), std::make_pair(0.0, 0.0));
}

TEST(Slide, TiffImagesDecodeLikePngAndBadOnesNameTheFile) {
  testing::TempDir dir;
  const Image image = draw_synthetic_tissue(61, 37, true, 5);
  for (bool tiled : {false, true}) {
    const std::string path = dir / (tiled ? "tiled.tif" : "strips.tiff");
    testing::write_tiff(path, image, tiled);
    const Image back = load_image(path);
    ASSERT_EQ(back.width, 61);
    ASSERT_EQ(back.height, 37);
    EXPECT_EQ(back.rgb, image.rgb) << path;
  }
  const std::string bytes = read_file(dir / "strips.tiff");
  write_file_atomically(dir / "cut.tif", bytes.substr(0, bytes.size() / 3));
  try {
    load_image(dir / "cut.tif");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "cut.tif"), std::string::npos) << e.what();
  }
  // A plain TIFF is a one-level slide too.
  const auto slide = open_slide(dir / "strips.tiff", 0.5);
  EXPECT_EQ(slide->levels().size(), 1u);
  EXPECT_EQ(slide->mpp_x(), 0.5);
  const Image region = slide->read_region(0, 50, -2, 20, 6);  // outside reads as glass
  EXPECT_EQ(region.row(0)[0], 255);
  EXPECT_EQ(region.row(3)[0], image.row(1)[3 * 50]);
  EXPECT_EQ(region.row(3)[3 * 15], 255);
}

TEST(Slide, ThumbnailReadsTheCoarseLevelInBoundedPieces) {
  DrawnSlide slide(100000, 60000, 6, 0.25);
  const Thumbnail t = read_thumbnail(slide, 1000);
  EXPECT_EQ(t.image.width, 1000);
  EXPECT_EQ(t.image.height, 600);
  EXPECT_NEAR(t.downsample_x, 100.0, 1e-9);
  for (int level : slide.levels_read) EXPECT_EQ(level, 5);  // 32 <= 100: the coarsest level
  EXPECT_LE(slide.largest_read, int64_t(4096) * 4096);
  // Left half tissue (pink), right half glass.
  EXPECT_EQ(t.image.row(300)[3 * 100], 200);
  EXPECT_EQ(t.image.row(300)[3 * 900], 250);
  // Without a pyramid the pieces shrink so a read stays bounded.
  DrawnSlide flat(8000, 6000, 1, 0.25);
  read_thumbnail(flat, 100);  // 80 level-0 pixels per thumbnail pixel
  EXPECT_LE(flat.largest_read, int64_t(4096) * 4096);
}

TEST(Slide, SyntheticSlidesArePyramidalTiffsOpenSlideReadsAtTheirScale) {
  testing::TempDir dir;
  SynthSlideOptions o;
  o.width = 3000;
  o.height = 1700;  // odd halvings: 1500x850, 750x425, 375x212
  o.pieces = 2;
  o.mpp = 0.5;
  write_synthetic_slide(dir / "s.tif", o);
  EXPECT_FALSE(std::filesystem::exists(dir / "s.tif.partial"));
  EXPECT_FALSE(std::filesystem::exists(dir / "s.tif.level1.raw"));
  const auto slide = open_slide(dir / "s.tif");
  EXPECT_EQ(slide->format(), "generic-tiff");
  ASSERT_EQ(slide->levels().size(), 4u);
  EXPECT_EQ(slide->levels()[3].width, 375);
  EXPECT_EQ(slide->levels()[3].height, 212);
  EXPECT_NEAR(slide->mpp_x(), 0.5, 1e-4);
  // Pixels as painted (JPEG-close), at level 0 and halved at level 1.
  const SyntheticSlideLayout layout(o);
  const Image painted = layout.paint(1000, 600, 64, 64);
  const Image read = slide->read_region(0, 1000, 600, 64, 64);
  double diff = 0;
  for (size_t i = 0; i < read.rgb.size(); ++i)
    diff += std::abs(int(read.rgb[i]) - int(painted.rgb[i])) / double(read.rgb.size());
  EXPECT_LT(diff, 8);
  // Glass at the corner, both classes of tissue somewhere.
  EXPECT_EQ(layout.label_at(5, 5), 0);
  int seen[3] = {0, 0, 0};
  for (int64_t y = 0; y < o.height; y += 50)
    for (int64_t x = 0; x < o.width; x += 50) ++seen[layout.label_at(x, y)];
  EXPECT_GT(seen[1], 50);
  EXPECT_GT(seen[2], 50);
  const Image corner = slide->read_region(1, 0, 0, 8, 8);
  EXPECT_GT(corner.rgb[0], 230);
}

TEST(Tissue, OtsuSplitsTwoModes) {
  std::vector<int64_t> h(256, 0);
  h[10] = 1000;
  h[12] = 500;
  h[120] = 800;
  h[130] = 300;
  const int t = otsu_threshold(h);
  EXPECT_GT(t, 12);
  EXPECT_LE(t, 120);
}

// A 200x100 thumbnail of glass.
Image glass_thumbnail() {
  Image image;
  image.width = 200;
  image.height = 100;
  image.rgb.assign(size_t(200) * 100 * 3, 245);
  return image;
}

void paint(Image& image, int x0, int y0, int x1, int y1, uint8_t r, uint8_t g, uint8_t b) {
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) {
      image.row(y)[3 * x] = r;
      image.row(y)[3 * x + 1] = g;
      image.row(y)[3 * x + 2] = b;
    }
}

TEST(Tissue, FindsTissueDropsSpecksFillsHolesAndBlankIsGlass) {
  Image image = glass_thumbnail();
  paint(image, 20, 20, 120, 80, 210, 110, 180);  // tissue
  paint(image, 60, 40, 70, 50, 245, 245, 245);   // a lumen: a hole of 100 pixels
  paint(image, 150, 10, 153, 13, 200, 90, 170);  // a speck of 9 pixels
  TissueOptions o;
  o.min_object_pixels = 20;
  o.max_hole_pixels = 200;
  const TissueMask mask = detect_tissue(image, o);
  EXPECT_GT(mask.threshold, kMinTissueSaturation);
  EXPECT_EQ(mask.tissue_pixels(), 100 * 60);  // the block with its hole filled, no speck
  EXPECT_DOUBLE_EQ(mask.fraction(20, 20, 120, 80), 1.0);
  EXPECT_DOUBLE_EQ(mask.fraction(140, 0, 200, 100), 0.0);
  EXPECT_NEAR(mask.fraction(0, 0, 40, 40), 400.0 / 1600, 1e-12);

  Image blank = image;
  std::fill(blank.rgb.begin(), blank.rgb.end(), 240);
  for (size_t i = 0; i < blank.rgb.size(); i += 7) blank.rgb[i] = 236;  // scanner noise
  EXPECT_EQ(detect_tissue(blank).tissue_pixels(), 0);
  EXPECT_THROW(detect_tissue(image, TissueOptions{1.5, 0, 0}), Error);
}

// Marker ink as scanned: the pen's colour times what lies under it.
TEST(PenInk, ThePaletteTellsMarkerInkFromHAndE) {
  for (const auto& [r, g, b] :
       std::vector<std::array<uint8_t, 3>>{{42, 66, 161},
                                           {37, 30, 120},  // blue on glass, on eosin
                                           {38, 142, 85},
                                           {33, 65, 64},  // green
                                           {190, 38, 47},
                                           {165, 17, 35}})  // red
    EXPECT_TRUE(is_pen_ink(r, g, b)) << int(r) << "," << int(g) << "," << int(b);
  // Eosin, a gland, nuclei as a thumbnail averages them, glass, a dark border.
  for (const auto& [r, g, b] : std::vector<std::array<uint8_t, 3>>{{230, 150, 200},
                                                                   {210, 110, 180},
                                                                   {150, 90, 170},
                                                                   {90, 60, 140},
                                                                   {242, 242, 242},
                                                                   {10, 10, 10}})
    EXPECT_FALSE(is_pen_ink(r, g, b)) << int(r) << "," << int(g) << "," << int(b);
  // The corners are strict bounds: blue's (90, 90, 140) does not hold its own corner.
  EXPECT_FALSE(is_pen_ink(90, 89, 141));
  EXPECT_TRUE(is_pen_ink(89, 89, 141));
}

TEST(PenInk, AStrokeIsNeitherTissueNorAHoleAndADotOfPaletteIsLeftAlone) {
  Image image = glass_thumbnail();
  paint(image, 20, 20, 120, 80, 210, 110, 180);  // tissue
  paint(image, 10, 45, 190, 51, 37, 30, 120);    // a blue stroke across it and the glass
  paint(image, 60, 65, 90, 71, 37, 30, 120);     // one inside it
  paint(image, 40, 30, 42, 32, 37, 30, 120);     // 4 pixels of nucleus-like blue
  TissueOptions o;
  o.min_object_pixels = 20;
  o.max_hole_pixels = 2000;  // the stroke inside (180 pixels) would be filled as a lumen
  const TissueMask plain = detect_tissue(image, o);
  EXPECT_TRUE(plain.ink.empty());
  EXPECT_EQ(plain.tissue_pixels(), 100 * 60 + 80 * 6);  // the strokes taken for tissue

  o.min_ink_pixels = 20;
  const TissueMask mask = detect_tissue(image, o);
  // Each stroke with its one-pixel rim (a thumbnail's blend of ink and its side).
  EXPECT_EQ(mask.ink_pixels(), 182 * 8 + 32 * 8);
  EXPECT_EQ(mask.tissue_pixels(), 100 * 60 - 100 * 8 - 32 * 8);  // the dot stays tissue
  EXPECT_DOUBLE_EQ(mask.fraction(20, 45, 120, 51), 0.0);
  EXPECT_DOUBLE_EQ(mask.fraction(60, 65, 90, 71), 0.0);
  EXPECT_DOUBLE_EQ(mask.fraction(40, 30, 42, 32), 1.0);
  EXPECT_DOUBLE_EQ(mask.threshold, plain.threshold);
  const Image shown = mask.to_image();
  EXPECT_EQ(shown.row(48)[3 * 150], 128);  // ink grey, tissue white, glass black
  EXPECT_EQ(shown.row(30)[3 * 30], 255);
  EXPECT_EQ(shown.row(5)[3 * 5], 0);
  o.min_ink_pixels = 0;  // every palette pixel
  EXPECT_EQ(detect_tissue(image, o).ink_pixels(), 182 * 8 + 32 * 8 + 4 * 4);

  // A field all ink (a photo of a marker's tip): no tissue, no threshold from nothing.
  Image ink_only = glass_thumbnail();
  paint(ink_only, 0, 0, 200, 100, 42, 66, 161);
  const TissueMask none = detect_tissue(ink_only, o);
  EXPECT_EQ(none.tissue_pixels(), 0);
  EXPECT_EQ(none.ink_pixels(), 200 * 100);
  EXPECT_DOUBLE_EQ(none.threshold, kMinTissueSaturation);
}

// Ink over the darkest nuclei leaves the palette: holes in a stroke
// smaller than a stroke are ink; a gap wider than that is not.
TEST(PenInk, AStrokesSmallHolesAreInkAndItsOutsideIsNot) {
  Image image = glass_thumbnail();
  paint(image, 20, 20, 180, 80, 37, 30, 120);     // a broad stroke
  paint(image, 50, 40, 54, 44, 20, 8, 30);        // 16 pixels of ink over a dark nucleus
  paint(image, 100, 30, 140, 70, 210, 110, 180);  // 1600 pixels of tissue in it
  const std::vector<uint8_t> ink = find_pen_ink(image, 100);
  auto at = [&](int x, int y) { return ink[size_t(y) * 200 + x]; };
  EXPECT_EQ(at(51, 41), 1);
  EXPECT_EQ(at(120, 50), 0);
  EXPECT_EQ(at(100, 50), 1);  // the rim: grown one pixel into what it surrounds
  EXPECT_EQ(at(101, 50), 0);
  EXPECT_EQ(at(19, 19), 1);
  EXPECT_EQ(at(18, 18), 0);
  EXPECT_EQ(std::count(ink.begin(), ink.end(), 1), 162 * 62 - 38 * 38);
}

TEST(Tiling, TilesCoverTheModelsMicronsFromTheRightLevel) {
  DrawnSlide slide(40000, 20000, 5, 0.25);  // 40x scanner
  // Model: 0.62 um/px images, 256-px crops resized to 64: 2.48 um per network pixel.
  const TileGrid g = plan_tile_grid(slide, 2.48, 2.48, 64, 64);
  EXPECT_NEAR(g.tile_width, 64 * 2.48 / 0.25, 1e-9);  // 634.88 level-0 pixels
  EXPECT_NEAR(g.tile_um_x, 158.72, 1e-9);
  EXPECT_EQ(g.level, 3);  // downsample 8 <= 9.92 < 16
  EXPECT_EQ(g.read_width, 79);
  EXPECT_EQ(g.columns, 64);  // ceil(40000 / 634.88): the last one partly off the slide
  // Twice the resolution: twice the pixels per tile, the same microns.
  DrawnSlide fine(80000, 40000, 6, 0.125);
  const TileGrid f = plan_tile_grid(fine, 2.48, 2.48, 64, 64);
  EXPECT_NEAR(f.tile_width, 2 * g.tile_width, 1e-9);
  EXPECT_EQ(f.level, g.level + 1);
  EXPECT_EQ(f.columns, g.columns);

  DrawnSlide unknown(1000, 1000, 1, 0);
  try {
    plan_tile_grid(unknown, 2.48, 2.48, 64, 64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mpp"), std::string::npos);
  }
  try {
    plan_tile_grid(slide, 0, 0, 64, 64);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--mpp-model"), std::string::npos);
  }
}

TEST(Tiling, OnlyTilesOnTissueAreScored) {
  DrawnSlide slide(4000, 2000, 3, 0.5);
  const TileGrid g = plan_tile_grid(slide, 5, 5, 40, 40);  // 400-pixel tiles: 10 x 5
  const Thumbnail t = read_thumbnail(slide, 400);
  const TissueMask mask = detect_tissue(t.image);
  const std::vector<Tile> tiles = tissue_tiles(g, mask, t.downsample_x, t.downsample_y, 0.5);
  ASSERT_EQ(tiles.size(), 25u);  // the left half
  for (const Tile& tile : tiles) {
    EXPECT_LT(tile.x, 2000);
    EXPECT_FLOAT_EQ(tile.tissue, 1.0f);
  }
  const Image read = read_tiles(slide, g, tiles, 7, 1).at(0);
  EXPECT_EQ(read.width, 40);
  EXPECT_EQ(read.row(5)[0], 200);
}

TEST(Tiling, ATileReadsTheSameAloneOrWithItsNeighbours) {
  // Odd sizes: a tile of 97.3 level-0 pixels read at a level of downsample 2.
  DrawnSlide slide(3000, 1500, 3, 0.5);
  const TileGrid g = plan_tile_grid(slide, 0.5 * 97.3 / 32, 0.5 * 97.3 / 32, 32, 32);
  ASSERT_EQ(g.level, 1);
  EXPECT_EQ(tiles_per_read(g), 16);
  std::vector<Tile> tiles;
  for (int64_t c = 0; c < g.columns; ++c)
    tiles.push_back({std::llround(c * g.tile_width), 0, 97, 97, 1, c, 0});
  const std::vector<Image> together = read_tiles(slide, g, tiles, 0, tiles.size());
  for (size_t i = 0; i < tiles.size(); ++i)
    ASSERT_EQ(read_tiles(slide, g, tiles, i, 1).at(0).rgb, together[i].rgb) << i;
  // Fewer reads than tiles: one per row group of 16.
  slide.levels_read.clear();
  read_tiles(slide, g, tiles, 0, tiles.size());
  EXPECT_EQ(slide.levels_read.size(), size_t((tiles.size() + 15) / 16));
}

TEST(TileScorer, ScoresEveryTileInOrderWithBoundedReadAheadAndStops) {
  DrawnSlide slide(4000, 2000, 3, 0.5);
  const TileGrid g = plan_tile_grid(slide, 5, 5, 16, 16);  // 160-pixel tiles
  std::vector<Tile> tiles;
  for (int64_t i = 0; i < 37; ++i)
    tiles.push_back({(i % 25) * 160, (i / 25) * 160, 160, 160, 1, i % 25, i / 25});
  const ModelSpec spec = parse_model_spec("conv 4 kernel=3 pool=2; dense 2", "test");
  auto backend = make_backend(cpu_device());
  auto step = backend->compile(spec, infer_shapes(spec, 8, 16, 16), StepOptions{});
  step->set_parameters(Parameters::glorot(infer_shapes(spec, 8, 16, 16), 3));
  std::vector<TrainingStep*> members = {step.get()};
  ScoringOptions o;
  o.batch = 8;
  o.readers = 3;
  std::vector<size_t> firsts;
  std::vector<double> all;
  const ScoringTimes t = score_tiles(slide, g, tiles, 5, members, o,
                                     [&](size_t first, const std::vector<TileScore>& s) {
                                       firsts.push_back(first);
                                       for (const auto& v : s) all.push_back(v.p_malignant);
                                     });
  EXPECT_EQ(t.tiles, 32);
  EXPECT_EQ(firsts, (std::vector<size_t>{5, 13, 21, 29}));
  ASSERT_EQ(all.size(), 32u);
  // A tile scored alone gets the same probability as in its batch.
  std::vector<double> alone;
  score_tiles(slide, g, tiles, 36, members, o,
              [&](size_t, const std::vector<TileScore>& s) { alone.push_back(s[0].p_malignant); });
  EXPECT_NEAR(alone.at(0), all.back(), 1e-6);
  // Stopped: nothing after the flag.
  std::atomic<bool> stop{true};
  int calls = 0;
  score_tiles(
      slide, g, tiles, 0, members, o, [&](size_t, const auto&) { ++calls; }, &stop);
  EXPECT_EQ(calls, 0);
  // A reader's error reaches the caller, after the batches before it.
  slide.fail_at_x = tiles[16].x;  // the read of columns 16-24 (batch 3 of 5)
  calls = 0;
  EXPECT_THROW(score_tiles(slide, g, tiles, 0, members, o, [&](size_t, const auto&) { ++calls; }),
               Error);
  EXPECT_EQ(calls, 2);
}

// For members that all take bytes (the CUDA step) the readers make bytes and
// tables instead of floats; the scores, features included, are the same.
TEST(TileScorer, ScoresBytesForStepsThatTakeThemAsTheirFloats) {
  DrawnSlide slide(2000, 1000, 3, 0.5);
  const TileGrid g = plan_tile_grid(slide, 5, 5, 16, 16);
  std::vector<Tile> tiles;
  for (int64_t i = 0; i < 11; ++i) tiles.push_back({i * 160, 0, 160, 160, 1, i, 0});
  const ModelSpec spec = parse_model_spec("conv 4 kernel=3 pool=2; dense 3; dense 2", "test");
  const NetworkShape shape = infer_shapes(spec, 4, 16, 16);
  auto step = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
  step->set_parameters(Parameters::glorot(shape, 3));
  auto inner = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
  inner->set_parameters(Parameters::glorot(shape, 3));
  testing::ByteTakingStep taker(std::move(inner));
  ScoringOptions o;
  o.batch = 4;
  o.tta = true;
  o.features = true;
  o.normalization = Normalization::parse("0.7,0.5,0.6,0.2,0.25,0.21", "test");
  auto scores = [&](TrainingStep* member) {
    std::vector<TileScore> all;
    score_tiles(slide, g, tiles, 0, {member}, o, [&](size_t, const std::vector<TileScore>& s) {
      all.insert(all.end(), s.begin(), s.end());
    });
    return all;
  };
  const std::vector<TileScore> want = scores(step.get()), got = scores(&taker);
  EXPECT_EQ(taker.byte_predictions, 3 * 8) << "3 batches, 8 transforms each";
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].p_malignant, want[i].p_malignant) << "tile " << i;
    EXPECT_EQ(got[i].features, want[i].features) << "tile " << i;
    EXPECT_EQ(got[i].focus, want[i].focus) << "tile " << i;
  }
}

// A grade model's tiles: each class's P in tiles.csv (read back for a
// resume), and each class's share of the tissue by its tiles' argmax.
TEST(SlideOutputs, AGradeModelsTilesCarryTheirClasses) {
  TileGrid g;
  g.tile_um_x = g.tile_um_y = 100;
  const std::vector<Tile> tiles = {{0, 0, 10, 10, 1.0f}, {10, 0, 10, 10, 0.5f}};
  const std::vector<std::string> classes = {"healthy", "low", "high"};
  const std::vector<TileScore> scores = {{0.2, 0, 310.5f, {0.8f, 0.1f, 0.1f}, {}},
                                         {0.9, 0, 12.25f, {0.1f, 0.2f, 0.7f}, {}}};
  testing::TempDir dir;
  std::string csv = tiles_csv_header(false, classes) + "\n";
  EXPECT_NE(csv.find(",p_malignant,p_healthy,p_low,p_high"), std::string::npos) << csv;
  for (size_t i = 0; i < 2; ++i) csv += tile_row(tiles[i], g, scores[i], false) + "\n";
  write_file_atomically(dir / "tiles.csv", csv);
  const std::vector<TileScore> back = read_tile_scores(dir / "tiles.csv", tiles, false, classes);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back[1].classes, scores[1].classes);
  EXPECT_EQ(back[0].focus, 310.5f);
  EXPECT_NEAR(back[1].focus, 12.25, 0.05 + 1e-6);                          // one decimal
  EXPECT_THROW(read_tile_scores(dir / "tiles.csv", tiles, false), Error);  // two-class header
  const nlohmann::json s = score_statistics(tiles, scores, g, 1, classes);
  EXPECT_NEAR(s["class_area_fraction"]["healthy"].get<double>(), 1.0 / 1.5, 1e-12);
  EXPECT_NEAR(s["class_area_fraction"]["high"].get<double>(), 0.5 / 1.5, 1e-12);
  EXPECT_EQ(s["class_area_fraction"]["low"].get<double>(), 0.0);
  // QuPath reads each tile's most probable class, in its colour, and every
  // class's P.
  write_tiles_geojson(dir / "tiles.geojson", tiles, scores, classes);
  const auto geo = nlohmann::json::parse(read_file(dir / "tiles.geojson"));
  ASSERT_EQ(geo["features"].size(), 2u);
  const auto& second = geo["features"][1]["properties"];
  EXPECT_EQ(second["classification"]["name"], "high");
  uint8_t high[3];
  class_colour(2, high);
  EXPECT_EQ(second["classification"]["color"], nlohmann::json({high[0], high[1], high[2]}));
  EXPECT_NEAR(second["measurements"]["P(low)"].get<double>(), 0.2, 1e-6);
  EXPECT_NEAR(second["measurements"]["P(malignant)"].get<double>(), 0.9, 1e-6);
  // The grade map: each tile blended in its class's colour (alpha 0.55 over
  // a white thumbnail), drawn with its key.
  const Image thumb{4, 2, std::vector<uint8_t>(4 * 2 * 3, 255)};
  const Image map = class_overlay(thumb, 5, 5, tiles, scores);
  uint8_t healthy[3];
  class_colour(0, healthy);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(map.row(0)[c], uint8_t(std::lround(0.45 * 255 + 0.55 * healthy[c])));
    EXPECT_EQ(map.row(1)[3 * 2 + c], uint8_t(std::lround(0.45 * 255 + 0.55 * high[c])));
  }
  render_class_map(dir.path(), map, 0.5, 0.5, "grades", classes, {2 / 3.0, 0, 1 / 3.0});
  EXPECT_EQ(load_image(dir / "grades.png").width, 1000);
  const std::string script = read_file(dir / "grades.png.gp");
  EXPECT_NE(script.find("\"healthy (67%)\""), std::string::npos) << script;
  EXPECT_NE(script.find(class_colour_hex(2)), std::string::npos) << script;
  EXPECT_THROW(render_class_map(dir.path(), map, 0.5, 0.5, "grades", classes, {1.0}), Error);
}

// A thumbnail wider than the 1000-pixel map is drawn area-reduced to the
// map's width (gnuplot's time grows with the image's pixels), covering the
// same millimetres; a narrower one is drawn as it is.
TEST(SlideOutputs, HeatmapsDrawTheOverlayAtTheMapsWidth) {
  testing::TempDir dir;
  Image wide{2048, 1536, std::vector<uint8_t>(size_t(2048) * 1536 * 3, 200)};
  for (int y = 0; y < 1536; ++y) wide.row(y)[3 * (y * 2048 / 1536)] = 0;  // a diagonal
  render_heatmap(dir.path(), wide, 0.01, 0.01, "wide");
  const Image drawn = load_image(dir / "heatmap-overlay.png");
  EXPECT_EQ(drawn.width, 1000);
  EXPECT_EQ(drawn.height, 750);
  const std::string script = read_file(dir / "heatmap.png.gp");
  EXPECT_NE(script.find("set xrange [0:20.48]"), std::string::npos) << script;
  EXPECT_NE(script.find("set yrange [15.36:0]"), std::string::npos) << script;
  EXPECT_NE(script.find("dx=0.02048 dy=0.02048"), std::string::npos) << script;
  EXPECT_EQ(load_image(dir / "heatmap.png").width, 1000);
  const Image narrow{600, 400, std::vector<uint8_t>(size_t(600) * 400 * 3, 90)};
  render_heatmap(dir.path(), narrow, 0.01, 0.01, "narrow");
  EXPECT_EQ(load_image(dir / "heatmap-overlay.png").width, 600);
}

TEST(SlideOutputs, StatisticsColoursAndResumeRows) {
  TileGrid g;
  g.tile_um_x = g.tile_um_y = 100;
  std::vector<Tile> tiles = {{0, 0, 10, 10, 1.0f}, {10, 0, 10, 10, 0.5f}, {20, 0, 10, 10, 1.0f}};
  std::vector<TileScore> scores = {
      {0.1, 0, 480.5f, {}, {}}, {0.9, 0, 21.5f, {}, {}}, {0.7, 0, 97.25f, {}, {}}};
  const nlohmann::json s = score_statistics(tiles, scores, g, 2);
  EXPECT_NEAR(s["malignant_area_fraction"].get<double>(), 1.5 / 2.5, 1e-12);
  EXPECT_NEAR(s["scored_tissue_mm2"].get<double>(), 2.5 * 0.01, 1e-12);
  EXPECT_NEAR(s["p_quantiles"]["0.5"].get<double>(), 0.7, 1e-12);
  EXPECT_NEAR(s["p_top_mean"].get<double>(), (0.9 + 0.7) / 2, 1e-7);  // the top 2
  EXPECT_NEAR(score_statistics(tiles, scores, g, 0)["p_top_mean"].get<double>(), 0.9, 1e-7);
  EXPECT_NEAR(score_statistics(tiles, scores, g, 50)["p_top_mean"].get<double>(), 1.7 / 3, 1e-7);
  ASSERT_EQ(s["top_tiles"].size(), 2u);
  EXPECT_EQ(s["top_tiles"][0]["x"], 10);
  uint8_t lo[3], mid[3], hi[3];
  heatmap_colour(0, lo);
  heatmap_colour(0.5, mid);
  heatmap_colour(1, hi);
  EXPECT_GT(lo[2], lo[0]);  // blue for benign
  EXPECT_GT(hi[0], hi[2]);  // red for malignant
  EXPECT_EQ(mid[0], 255);

  testing::TempDir dir;
  std::string csv = tiles_csv_header(false) + "\n";
  for (size_t i = 0; i < 2; ++i) csv += tile_row(tiles[i], g, scores[i], false) + "\n";
  write_file_atomically(dir / "tiles.csv", csv);
  const std::vector<TileScore> back = read_tile_scores(dir / "tiles.csv", tiles, false);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_NEAR(back[1].p_malignant, 0.9, 1e-6);
  EXPECT_EQ(back[0].focus, 480.5f);
  EXPECT_EQ(back[1].focus, 21.5f);
  std::swap(tiles[0], tiles[1]);  // another grid: the rows no longer match
  EXPECT_THROW(read_tile_scores(dir / "tiles.csv", tiles, false), Error);
  EXPECT_THROW(read_tile_scores(dir / "tiles.csv", tiles, true), Error);  // other header
  write_tiles_geojson(dir / "tiles.geojson", tiles, scores);
  const nlohmann::json geo = nlohmann::json::parse(read_file(dir / "tiles.geojson"));
  EXPECT_EQ(geo["features"].size(), 3u);
  EXPECT_EQ(geo["features"][1]["properties"]["classification"]["name"], "Malignant");
  EXPECT_EQ(geo["features"][1]["geometry"]["coordinates"][0][2][0], 10);
  EXPECT_DOUBLE_EQ(geo["features"][1]["properties"]["measurements"]["P(malignant)"], 0.9);
  EXPECT_EQ(geo["features"][0]["properties"]["objectType"], "detection");
  EXPECT_DOUBLE_EQ(geo["features"][0]["properties"]["measurements"]["Focus"], 480.5);
}

// Tiles under --min-focus: counted, their share of the scored tissue, and
// left out of what follows tiles.csv; none below a threshold of 0.
TEST(SlideOutputs, OutOfFocusTilesAreCountedAndSetAside) {
  std::vector<Tile> tiles = {{0, 0, 10, 10, 1.0f}, {10, 0, 10, 10, 0.5f}, {20, 0, 10, 10, 1.0f}};
  std::vector<TileScore> scores = {
      {0.1, 0, 480.5f, {}, {}}, {0.9, 0, 21.5f, {}, {}}, {0.7, 0, 97.25f, {}, {}}};
  const nlohmann::json none = focus_statistics(tiles, scores, 0);
  EXPECT_EQ(none["out_of_focus_tiles"], 0);
  EXPECT_EQ(none["out_of_focus_fraction"], 0.0);
  EXPECT_DOUBLE_EQ(none["focus_median"].get<double>(), 97.25);
  EXPECT_DOUBLE_EQ(none["focus_p05"].get<double>(), 21.5);
  EXPECT_DOUBLE_EQ(none["focus_p95"].get<double>(), 480.5);
  const nlohmann::json some = focus_statistics(tiles, scores, 100);
  EXPECT_EQ(some["out_of_focus_tiles"], 2);
  EXPECT_NEAR(some["out_of_focus_fraction"].get<double>(), 1.5 / 2.5, 1e-12);
  EXPECT_EQ(some["min_focus"], 100.0);
  keep_in_focus(tiles, scores, 100);
  ASSERT_EQ(tiles.size(), 1u);
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(tiles[0].x, 0);
  EXPECT_EQ(scores[0].p_malignant, 0.1);
  EXPECT_TRUE(focus_statistics({}, {}, 100).empty());
}

}  // namespace
}  // namespace histocnn
