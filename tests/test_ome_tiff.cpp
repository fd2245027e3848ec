// OME-TIFF and other pyramids kept in level 0's SubIFDs (Bio-Formats,
// QuPath, bfconvert, libvips' --subifd): the scale from OME-XML, the levels
// from the SubIFDs (which OpenSlide 3.4 does not see), the same pixels as
// the same pyramid laid out one level per main directory, and SubIFDs that
// are not levels passed over by name.
#include <gtest/gtest.h>
#include <tiffio.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli_util.h"
#include "data/ome_xml.h"
#include "data/slide.h"
#include "data/slide_writer.h"
#include "data/synth_slide.h"
#include "test_util.h"
#include "tiff_file.h"

namespace histocnn {
namespace {

std::string ome_with_pixels(const std::string& pixel_attributes) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><OME "
         "xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><Image ID=\"Image:0\">"
         "<Pixels ID=\"Pixels:0\" SizeX=\"10\" SizeY=\"10\" " +
         pixel_attributes + "><TiffData IFD=\"0\"/></Pixels></Image></OME>";
}

TEST(OmeXml, PixelSizeIsReadInItsUnit) {
  struct Case {
    std::string attributes;
    double x_um, y_um;
  };
  const std::vector<Case> cases{
      {"PhysicalSizeX=\"0.25\" PhysicalSizeY=\"0.26\"", 0.25, 0.26},  // µm by default
      {"PhysicalSizeX=\"0.5\" PhysicalSizeXUnit=\"\xC2\xB5m\" PhysicalSizeY=\"0.5\" "
       "PhysicalSizeYUnit=\"\xC2\xB5m\"",
       0.5, 0.5},  // the micro sign
      {"PhysicalSizeX=\"0.5\" PhysicalSizeXUnit=\"\xCE\xBCm\" PhysicalSizeY=\"0.5\" "
       "PhysicalSizeYUnit=\"um\"",
       0.5, 0.5},  // Greek mu, and plain "um"
      {"PhysicalSizeX=\"250\" PhysicalSizeXUnit=\"nm\" PhysicalSizeY=\"2.5e-4\" "
       "PhysicalSizeYUnit=\"mm\"",
       0.25, 0.25},
      {"PhysicalSizeX=\"2.5e-5\" PhysicalSizeXUnit=\"cm\" PhysicalSizeY=\"2.5e-7\" "
       "PhysicalSizeYUnit=\"m\"",
       0.25, 0.25},
      {"PhysicalSizeX=\"1e-5\" PhysicalSizeXUnit=\"in\" PhysicalSizeY=\"2500\" "
       "PhysicalSizeYUnit=\"\xC3\x85\"",
       0.254, 0.25},
      // Not a scale: in pixels, one axis only, zero, negative, not a number,
      // an unknown unit.
      {"PhysicalSizeX=\"1\" PhysicalSizeXUnit=\"pixel\" PhysicalSizeY=\"1\" "
       "PhysicalSizeYUnit=\"pixel\"",
       0, 0},
      {"PhysicalSizeX=\"0.25\"", 0, 0},
      {"PhysicalSizeX=\"0\" PhysicalSizeY=\"0.25\"", 0, 0},
      {"PhysicalSizeX=\"-0.25\" PhysicalSizeY=\"0.25\"", 0, 0},
      {"PhysicalSizeX=\"0.25um\" PhysicalSizeY=\"0.25\"", 0, 0},
      {"PhysicalSizeX=\"nan\" PhysicalSizeY=\"0.25\"", 0, 0},
      {"PhysicalSizeX=\"0.25\" PhysicalSizeXUnit=\"ly\" PhysicalSizeY=\"0.25\"", 0, 0},
  };
  for (const Case& c : cases) {
    const OmePixelSize size = ome_pixel_size(ome_with_pixels(c.attributes));
    EXPECT_TRUE(size.is_ome) << c.attributes;
    EXPECT_NEAR(size.x_um, c.x_um, 1e-9) << c.attributes;
    EXPECT_NEAR(size.y_um, c.y_um, 1e-9) << c.attributes;
  }
}

TEST(OmeXml, TheImageStoredFromTheFirstDirectoryGivesTheScale) {
  // A label image listed first, stored from IFD 5; the slide from IFD 0.
  const std::string two =
      "<OME><Image ID=\"Image:1\"><Pixels PhysicalSizeX=\"40\" PhysicalSizeY=\"40\">"
      "<TiffData IFD=\"5\"/></Pixels></Image><Image ID=\"Image:0\"><Pixels "
      "PhysicalSizeX=\"0.5\" PhysicalSizeY=\"0.5\"><TiffData/></Pixels></Image></OME>";
  EXPECT_DOUBLE_EQ(ome_pixel_size(two).x_um, 0.5);
  // With a namespace prefix, as some writers spell it.
  const std::string prefixed =
      "<ome:OME xmlns:ome=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\"><ome:Image>"
      "<ome:Pixels PhysicalSizeX=\"0.3\" PhysicalSizeY=\"0.3\"><ome:TiffData IFD=\"0\"/>"
      "</ome:Pixels></ome:Image></ome:OME>";
  EXPECT_DOUBLE_EQ(ome_pixel_size(prefixed).y_um, 0.3);
  // A converted CellSens .vsi: its overview photograph first, from IFD 0;
  // the slide's level 0 is told by its size.
  const std::string vsi =
      "<OME><Image ID=\"Image:0\"><Pixels SizeX=\"1200\" SizeY=\"400\" PhysicalSizeX=\"16\" "
      "PhysicalSizeY=\"16\"><TiffData IFD=\"0\"/></Pixels></Image><Image ID=\"Image:1\"><Pixels "
      "SizeX=\"60000\" SizeY=\"40000\" PhysicalSizeX=\"0.274\" PhysicalSizeY=\"0.274\"><TiffData "
      "IFD=\"1\"/></Pixels></Image></OME>";
  EXPECT_DOUBLE_EQ(ome_pixel_size(vsi, 60000, 40000).x_um, 0.274);
  EXPECT_DOUBLE_EQ(ome_pixel_size(vsi, 1200, 400).x_um, 16.0);
  EXPECT_DOUBLE_EQ(ome_pixel_size(vsi).x_um, 16.0);              // no size: IFD 0's
  EXPECT_DOUBLE_EQ(ome_pixel_size(vsi, 5000, 5000).x_um, 16.0);  // no image of that size
  // No TiffData that starts at IFD 0: the first image.
  EXPECT_DOUBLE_EQ(
      ome_pixel_size("<OME><Image><Pixels PhysicalSizeX=\"2\" PhysicalSizeY=\"2\"/></Image></OME>")
          .x_um,
      2.0);
}

TEST(OmeXml, OtherDescriptionsAreNotOme) {
  for (const std::string& text :
       {std::string(""), std::string("Aperio Image Library v12\r\n46000x32914 |MPP = 0.499"),
        std::string("<OME><Image>"),  // truncated
        std::string("<Slide><OME/></Slide>"), std::string("ImageJ=1.53\nunit=micron\n")}) {
    const OmePixelSize size = ome_pixel_size(text);
    EXPECT_FALSE(size.is_ome) << text;
    EXPECT_EQ(size.x_um, 0) << text;
  }
  EXPECT_TRUE(ome_pixel_size("<OME/>").is_ome);  // OME, without a scale
  EXPECT_EQ(ome_pixel_size("<OME/>").x_um, 0);
}

// Reads at each level of `got` equal `want`'s, at level pixels
// (positions inside, across tile edges, past the slide's edges).
void expect_same_levels(const Slide& got, const Slide& want) {
  ASSERT_EQ(got.levels().size(), want.levels().size());
  for (size_t l = 0; l < got.levels().size(); ++l) {
    const SlideLevel& a = got.levels()[l];
    const SlideLevel& b = want.levels()[l];
    EXPECT_EQ(a.width, b.width) << "level " << l;
    EXPECT_EQ(a.height, b.height) << "level " << l;
    EXPECT_DOUBLE_EQ(a.downsample, b.downsample) << "level " << l;
    for (const auto& [lx, ly] : std::vector<std::pair<int64_t, int64_t>>{
             {0, 0}, {a.width / 3, a.height / 2}, {250, 100}, {a.width - 40, a.height - 30}}) {
      const int64_t x = std::llround(double(lx) * a.downsample);
      const int64_t y = std::llround(double(ly) * a.downsample);
      EXPECT_EQ(got.read_region(int(l), x, y, 90, 70).rgb,
                want.read_region(int(l), x, y, 90, 70).rgb)
          << "level " << l << " at " << lx << "," << ly;
    }
  }
}

TEST(OmeTiff, ThePyramidInSubIfdsIsReadWithTheScaleOfItsXml) {
  testing::TempDir dir;
  SynthSlideOptions o;
  o.width = 3000;
  o.height = 1700;  // levels 1500x850, 750x425, 375x212
  o.pieces = 2;
  o.mpp = 0.2525;
  write_synthetic_slide(dir / "main.tif", o);
  o.layout = SlideLayout::ome;
  write_synthetic_slide(dir / "s.ome.tif", o);
  const auto main_chain = open_slide(dir / "main.tif");
  const auto ome = open_slide(dir / "s.ome.tif");
  EXPECT_EQ(ome->format(), "ome-tiff");
  EXPECT_EQ(ome->reader(), "direct-tiff");
  EXPECT_EQ(ome->reader_note(), "");
  EXPECT_DOUBLE_EQ(ome->mpp_x(), 0.2525);  // the XML's: the file has no resolution tags
  EXPECT_DOUBLE_EQ(ome->mpp_y(), 0.2525);
  ASSERT_EQ(ome->levels().size(), 4u);
  // The same JPEG tiles as the main-chain pyramid: the same pixels.
  expect_same_levels(*ome, *main_chain);
  // Between level pixels of a level OpenSlide does not see: the nearest one.
  const double ds = ome->levels()[2].downsample;  // 4
  EXPECT_EQ(ome->read_region(2, 401, 203, 50, 40).rgb,
            ome->read_region(2, std::llround(100 * ds), std::llround(51 * ds), 50, 40).rgb);
  // OpenSlide alone sees level 0, and the scale through the same XML.
  const auto openslide = open_slide(dir / "s.ome.tif", 0, SlideReader::openslide);
  EXPECT_EQ(openslide->format(), "ome-tiff");
  EXPECT_EQ(openslide->levels().size(), 1u);
  EXPECT_DOUBLE_EQ(openslide->mpp_x(), 0.2525);
  EXPECT_EQ(openslide->read_region(0, 1000, 600, 64, 64).rgb,
            ome->read_region(0, 1000, 600, 64, 64).rgb);
  // A scale given on the command line still wins.
  EXPECT_DOUBLE_EQ(open_slide(dir / "s.ome.tif", 0.5)->mpp_x(), 0.5);
  // Named without its double extension.
  EXPECT_EQ(slide_name(dir / "s.ome.tif"), "s");
  EXPECT_TRUE(has_ome_tiff_name("A.OME.TIFF"));
  EXPECT_FALSE(has_ome_tiff_name("a.ome.png"));
  EXPECT_FALSE(has_ome_tiff_name("ome.tif"));
}

// A level of side x side pixels, grey `value`, 64-pixel tiles (or strips).
void write_grey_directory(TIFF* t, uint32_t side, uint8_t value, bool tiled, bool reduced) {
  TIFFSetField(t, TIFFTAG_SUBFILETYPE, reduced ? FILETYPE_REDUCEDIMAGE : 0);
  testing::set_rgb8_fields(t, side, side, COMPRESSION_NONE);
  if (tiled) {
    TIFFSetField(t, TIFFTAG_TILEWIDTH, uint32_t(64));
    TIFFSetField(t, TIFFTAG_TILELENGTH, uint32_t(64));
    std::vector<uint8_t> tile(64 * 64 * 3, value);
    for (uint32_t y = 0; y < side; y += 64)
      for (uint32_t x = 0; x < side; x += 64)
        ASSERT_GE(TIFFWriteTile(t, tile.data(), x, y, 0, 0), 0);
  } else {
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, uint32_t(16));
    std::vector<uint8_t> row(size_t(side) * 3, value);
    for (uint32_t y = 0; y < side; ++y) ASSERT_GE(TIFFWriteScanline(t, row.data(), y, 0), 0);
  }
  ASSERT_TRUE(TIFFWriteDirectory(t));
}

TEST(OmeTiff, SubIfdsThatAreNotLevelsArePassedOverByName) {
  testing::TempDir dir;
  {
    // Level 0 of 512 (grey 200) with four SubIFDs: 256 tiled (150), 128 in
    // strips, 64 tiled (100), 1024 tiled (larger than level 0); then a
    // tiled image of its own in the main chain (a label, 96 px).
    std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen((dir / "p.tif").c_str(), "w"), TIFFClose);
    ASSERT_TRUE(tiff);
    std::vector<uint64_t> offsets(4, 0);
    TIFFSetField(tiff.get(), TIFFTAG_SUBIFD, uint16_t(4), offsets.data());
    write_grey_directory(tiff.get(), 512, 200, true, false);
    write_grey_directory(tiff.get(), 256, 150, true, true);
    write_grey_directory(tiff.get(), 128, 120, false, true);
    write_grey_directory(tiff.get(), 64, 100, true, true);
    write_grey_directory(tiff.get(), 1024, 50, true, true);
    write_grey_directory(tiff.get(), 96, 30, true, false);
  }
  const auto slide = open_slide(dir / "p.tif");
  EXPECT_EQ(slide->format(), "generic-tiff");  // no OME-XML: a SubIFD pyramid all the same
  EXPECT_EQ(slide->reader(), "direct-tiff");
  ASSERT_EQ(slide->levels().size(), 3u);  // 512, 256, 64: the label is not a level
  EXPECT_EQ(slide->levels()[1].width, 256);
  EXPECT_DOUBLE_EQ(slide->levels()[1].downsample, 2.0);
  EXPECT_EQ(slide->levels()[2].width, 64);
  EXPECT_DOUBLE_EQ(slide->levels()[2].downsample, 8.0);
  EXPECT_EQ(slide->reader_note(),
            "not pyramid levels: SubIFD 1: not tiled; SubIFD 3: 1024x1024 is not smaller than "
            "level 0");
  const uint8_t expected[] = {200, 150, 100};
  for (int l = 0; l < 3; ++l) {
    const Image got = slide->read_region(l, 0, 0, 8, 8);
    EXPECT_EQ(got.rgb.front(), expected[l]) << "level " << l;
    EXPECT_EQ(got.rgb.back(), expected[l]) << "level " << l;
  }
  // The coarse level serves the thumbnail.
  EXPECT_EQ(read_thumbnail(*slide, 32).image.rgb.front(), 100);
}

// A test pattern whose channels differ (a swapped plane shows).
Image pattern(int width, int height, int seed) {
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(size_t(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.row(y) + 3 * x;
      p[0] = uint8_t(x * 3 + seed);
      p[1] = uint8_t(y * 5 + 2 * seed);
      p[2] = uint8_t((x ^ y) + 40);
    }
  return image;
}

// `image` as one directory of R, G and B planes in 64-pixel tiles.
void write_planes(TIFF* t, const Image& image, uint16_t compression, bool reduced) {
  TIFFSetField(t, TIFFTAG_SUBFILETYPE, reduced ? FILETYPE_REDUCEDIMAGE : 0);
  testing::set_rgb8_fields(t, uint32_t(image.width), uint32_t(image.height), compression,
                           PLANARCONFIG_SEPARATE);
  if (compression == COMPRESSION_JPEG) TIFFSetField(t, TIFFTAG_JPEGQUALITY, 90);
  TIFFSetField(t, TIFFTAG_TILEWIDTH, uint32_t(64));
  TIFFSetField(t, TIFFTAG_TILELENGTH, uint32_t(64));
  std::vector<uint8_t> tile(64 * 64);
  for (uint16_t c = 0; c < 3; ++c)
    for (int ty = 0; ty < image.height; ty += 64)
      for (int tx = 0; tx < image.width; tx += 64) {
        std::fill(tile.begin(), tile.end(), 0);
        for (int r = 0; r < 64 && ty + r < image.height; ++r)
          for (int x = 0; x < 64 && tx + x < image.width; ++x)
            tile[size_t(r) * 64 + x] = image.row(ty + r)[3 * (tx + x) + c];
        ASSERT_GE(TIFFWriteTile(t, tile.data(), uint32_t(tx), uint32_t(ty), 0, c), 0);
      }
  ASSERT_TRUE(TIFFWriteDirectory(t));
}

// Level 0 (640 x 480) and a SubIFD (320 x 240), both in planes.
void write_planar_pyramid(const std::string& path, uint16_t compression) {
  std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen(path.c_str(), "w"), TIFFClose);
  ASSERT_TRUE(tiff);
  std::vector<uint64_t> offsets(1, 0);
  TIFFSetField(tiff.get(), TIFFTAG_SUBIFD, uint16_t(1), offsets.data());
  write_planes(tiff.get(), pattern(640, 480, 0), compression, false);
  write_planes(tiff.get(), pattern(320, 240, 7), compression, true);
}

// What libtiff's RGBA interface (OpenSlide 3.4's decoder) makes of the
// directory at `subifd` (0: the first directory).
Image decoded_by_libtiff(const std::string& path, uint64_t subifd) {
  std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen(path.c_str(), "r"), TIFFClose);
  if (subifd) {
    EXPECT_TRUE(TIFFSetSubDirectory(tiff.get(), subifd));
  }
  return testing::read_rgba_page(tiff.get());
}

uint64_t first_subifd(const std::string& path) {
  std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen(path.c_str(), "r"), TIFFClose);
  uint16_t count = 0;
  uint64_t* offsets = nullptr;
  EXPECT_TRUE(TIFFGetField(tiff.get(), TIFFTAG_SUBIFD, &count, &offsets));
  return count ? offsets[0] : 0;
}

TEST(OmeTiff, ColourPlanesInSeparateTilesAreReadDirectly) {
  testing::TempDir dir;
  for (const uint16_t compression : {COMPRESSION_LZW, COMPRESSION_JPEG}) {
    const std::string path = dir / ("planes-" + std::to_string(compression) + ".tif");
    write_planar_pyramid(path, compression);
    const auto slide = open_slide(path);
    EXPECT_EQ(slide->reader(), "direct-tiff") << compression;
    EXPECT_EQ(slide->reader_note(), "") << compression;
    ASSERT_EQ(slide->levels().size(), 2u) << compression;
    const std::vector<Image> truth{decoded_by_libtiff(path, 0),
                                   decoded_by_libtiff(path, first_subifd(path))};
    if (compression == COMPRESSION_LZW) {  // lossless: the pattern itself
      EXPECT_EQ(truth[0].rgb, pattern(640, 480, 0).rgb);
      EXPECT_EQ(truth[1].rgb, pattern(320, 240, 7).rgb);
    }
    for (int level = 0; level < 2; ++level)
      for (const auto& [x, y] : std::vector<std::pair<int, int>>{{0, 0}, {50, 70}, {250, 180}}) {
        const Image got = slide->read_region(level, x << level, y << level, 60, 50);
        Image want;
        want.width = 60;
        want.height = 50;
        want.rgb.assign(size_t(60) * 50 * 3, 255);
        for (int r = 0; r < 50; ++r)
          for (int c = 0; c < 60; ++c)
            if (x + c < truth[size_t(level)].width && y + r < truth[size_t(level)].height)
              std::memcpy(want.row(r) + 3 * c, truth[size_t(level)].row(y + r) + 3 * (x + c), 3);
        EXPECT_EQ(got.rgb, want.rgb)
            << compression << " level " << level << " at " << x << "," << y;
      }
  }
}

// A small untiled picture first and the slide after it (as a converted
// .vsi may store its overview): OpenSlide refuses the file, and it is not
// taken for the picture.
TEST(OmeTiff, ASlideStoredAfterASmallUntiledPictureIsRefusedByName) {
  testing::TempDir dir;
  {
    std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen((dir / "v.tif").c_str(), "w"), TIFFClose);
    ASSERT_TRUE(tiff);
    write_grey_directory(tiff.get(), 64, 90, false, false);
    write_grey_directory(tiff.get(), 512, 200, true, false);
  }
  const std::string error = testing::error_of([&] { open_slide(dir / "v.tif", 0.5); });
  EXPECT_NE(error.find("v.tif: its first image is not the slide (a larger image of 512x512 pixels "
                       "follows it"),
            std::string::npos)
      << error;
  // One page, or a larger first page, is an image as before.
  {
    std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen((dir / "p.tif").c_str(), "w"), TIFFClose);
    ASSERT_TRUE(tiff);
    write_grey_directory(tiff.get(), 64, 90, false, false);
    write_grey_directory(tiff.get(), 32, 90, false, false);
  }
  EXPECT_EQ(open_slide(dir / "p.tif", 0.5)->format(), "image");
}

// libvips, an independent writer: the same image saved with one level per
// main directory and with the levels in SubIFDs reads the same.
TEST(OmeTiff, LibvipsSubIfdPyramidReadsAsItsMainChainPyramid) {
  if (testing::run_raw("vips --version").status != 0)
    GTEST_SKIP() << "libvips-tools (vips) is not installed: scripts/install-deps.sh";
  testing::TempDir dir;
  SynthSlideOptions o;
  o.width = 2600;
  o.height = 1900;
  o.pieces = 2;
  write_synthetic_slide(dir / "source.tif", o);
  const std::string save = "vips tiffsave " + (dir / "source.tif") + " ";
  const std::string pyramid =
      " --tile --pyramid --compression jpeg --Q 90 --tile-width 128 --tile-height 128 "
      "--xres 1612.9 --yres 1612.9";
  ASSERT_EQ(testing::run_raw(save + (dir / "main.tif") + pyramid).status, 0);
  const testing::CommandResult sub =
      testing::run_raw(save + (dir / "sub.tif") + pyramid + " --subifd");
  ASSERT_EQ(sub.status, 0) << sub.output;
  const auto main_chain = open_slide(dir / "main.tif");
  const auto subifds = open_slide(dir / "sub.tif");
  EXPECT_EQ(subifds->reader(), "direct-tiff");
  EXPECT_GE(subifds->levels().size(), 4u);
  EXPECT_NEAR(subifds->mpp_x(), 0.62, 1e-3);
  expect_same_levels(*subifds, *main_chain);
}

}  // namespace
}  // namespace histocnn
