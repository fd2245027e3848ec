// DICOM whole-slide images: the frame layout rules on numbers alone, the
// frame codecs, and the reader against the same slide read as TIFF (the
// direct TIFF reader, itself checked against libtiff in
// test_slide_readers.cpp): uncompressed frames must give the same pixels,
// JPEG frames nearly the same, in every layout the writer can make.
#include <dcmtk/config/osconfig.h>  // dcmtk's own configuration comes first
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <gtest/gtest.h>
#include <openjpeg.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "core/error.h"
#include "data/dicom_layout.h"
#include "data/dicom_slide.h"
#include "data/dicom_writer.h"
#include "data/frame_codecs.h"
#include "data/slide.h"
#include "data/synth_slide.h"
#include "synthetic_tiff.h"
#include "test_util.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

TEST(DicomLayout, TiledFullFramesFillTilesRowByRowFromTheConcatenationOffset) {
  const FrameGrid grid{600, 300, 256, 256};  // 3 x 2 tiles, the last column and row partial
  EXPECT_EQ(tiles_across(grid), 3);
  EXPECT_EQ(tiles_down(grid), 2);
  EXPECT_EQ(tiled_full_frames(grid, 6, 0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  // A second focal plane's frames (6..11) are not the slide's.
  EXPECT_EQ(tiled_full_frames(grid, 12, 0), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  // The second file of a concatenation, from frame 4 on.
  EXPECT_EQ(tiled_full_frames(grid, 2, 4),
            (std::vector<int64_t>{kNoFrame, kNoFrame, kNoFrame, kNoFrame, 0, 1}));
  EXPECT_THROW(tiled_full_frames(grid, 0, 0), Error);
  EXPECT_THROW(tiled_full_frames({0, 300, 256, 256}, 1, 0), Error);
  // A forged header claiming 2^26 x 2^26 pixels in 16-pixel frames would ask
  // for a table of 2^44 tiles: refused before any allocation.
  EXPECT_THROW(tiled_full_frames({int64_t(1) << 26, int64_t(1) << 26, 16, 16}, 1, 0), Error);
}

TEST(DicomLayout, TiledSparseFramesGoWhereTheirPositionsSay) {
  const FrameGrid grid{600, 300, 256, 256};
  // Frames in any order; tile (1, 0) has none (glass); (2, 1) given twice.
  const std::vector<FramePosition> positions{{513, 257}, {1, 1},   {257, 257},
                                             {1, 257},   {513, 1}, {513, 257}};
  EXPECT_EQ(tiled_sparse_frames(grid, positions), (std::vector<int64_t>{1, kNoFrame, 4, 3, 2, 0}));
  EXPECT_THROW(tiled_sparse_frames(grid, {{2, 1}}), Error);    // between tiles
  EXPECT_THROW(tiled_sparse_frames(grid, {{1, 513}}), Error);  // below the level
  EXPECT_THROW(tiled_sparse_frames(grid, {{0, 1}}), Error);    // positions are 1-based
}

TEST(DicomLayout, FragmentsAreGroupedIntoFramesByTheOffsetTable) {
  using R = std::vector<FragmentRange>;
  auto same = [](const R& a, const R& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].first != b[i].first || a[i].count != b[i].count) return false;
    return true;
  };
  EXPECT_TRUE(same(fragments_of_frames({10, 20, 30}, {}, 3), R{{0, 1}, {1, 1}, {2, 1}}));
  EXPECT_TRUE(same(fragments_of_frames({10, 20, 30}, {}, 1), R{{0, 3}}));
  // Items of 8 + length bytes: fragments start at 0, 18, 38, 68, 80.
  EXPECT_TRUE(
      same(fragments_of_frames({10, 12, 22, 4, 6}, {0, 38, 80}, 3), R{{0, 2}, {2, 2}, {4, 1}}));
  EXPECT_THROW(fragments_of_frames({10, 12, 22, 4, 6}, {}, 3), Error);            // no table
  EXPECT_THROW(fragments_of_frames({10, 12, 22, 4, 6}, {0, 40, 80}, 3), Error);   // mid-item
  EXPECT_THROW(fragments_of_frames({10, 12, 22, 4, 6}, {0, 38, 38}, 3), Error);   // repeated
  EXPECT_THROW(fragments_of_frames({10, 12, 22, 4, 6}, {18, 38, 80}, 3), Error);  // first skipped
  EXPECT_THROW(fragments_of_frames({}, {}, 1), Error);
}

Image gradient(int w, int h) {
  Image img;
  img.width = w;
  img.height = h;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      img.rgb.insert(img.rgb.end(), {uint8_t(x * 255 / w), uint8_t(y * 255 / h),
                                     uint8_t(128 + 100 * std::sin(x * 0.1 + y * 0.05))});
  return img;
}

double mean_abs_difference(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += std::abs(int(a[i]) - int(b[i]));
  return sum / double(a.size());
}

TEST(FrameCodecs, JpegRoundTripsAndRefusesWhatItCannotDecode) {
  const Image img = gradient(64, 48);
  const std::vector<uint8_t> jpeg = encode_jpeg_rgb(img.rgb.data(), 64, 48, 95);
  const std::vector<uint8_t> back =
      decode_jpeg_rgb(jpeg.data(), jpeg.size(), 64, 48, JpegColours::ycbcr);
  EXPECT_LT(mean_abs_difference(back, img.rgb), 2.0);
  // Read as RGB, the YCbCr samples are not converted: other colours.
  EXPECT_GT(mean_abs_difference(decode_jpeg_rgb(jpeg.data(), jpeg.size(), 64, 48, JpegColours::rgb),
                                img.rgb),
            20.0);
  EXPECT_THROW(decode_jpeg_rgb(jpeg.data(), jpeg.size(), 64, 64, JpegColours::ycbcr), Error);
  EXPECT_THROW(decode_jpeg_rgb(jpeg.data(), jpeg.size() / 2, 64, 48, JpegColours::ycbcr), Error);
  const std::vector<uint8_t> junk(100, 0x5a);
  EXPECT_THROW(decode_jpeg_rgb(junk.data(), junk.size(), 64, 48, JpegColours::ycbcr), Error);
  EXPECT_THROW(encode_jpeg_rgb(img.rgb.data(), 64, 48, 0), Error);
}

// A lossless JPEG 2000 code stream (reversible 5/3 wavelet, with the colour
// transform DICOM calls YBR_RCT), encoded by OpenJPEG for the test.
struct GrowingBuffer {
  std::vector<uint8_t> bytes;
  size_t at = 0;
};
std::vector<uint8_t> encode_j2k(const Image& img) {
  opj_cparameters_t p;
  opj_set_default_encoder_parameters(&p);
  p.tcp_numlayers = 1;
  p.tcp_rates[0] = 0;
  p.cp_disto_alloc = 1;
  p.tcp_mct = 1;
  opj_image_cmptparm_t comps[3];
  std::memset(comps, 0, sizeof comps);
  for (auto& c : comps) {
    c.dx = c.dy = 1;
    c.w = OPJ_UINT32(img.width);
    c.h = OPJ_UINT32(img.height);
    c.prec = 8;
  }
  opj_image_t* image = opj_image_create(3, comps, OPJ_CLRSPC_SRGB);
  image->x1 = OPJ_UINT32(img.width);
  image->y1 = OPJ_UINT32(img.height);
  for (size_t i = 0; i < size_t(img.width) * img.height; ++i)
    for (int c = 0; c < 3; ++c) image->comps[c].data[i] = img.rgb[3 * i + size_t(c)];
  opj_codec_t* codec = opj_create_compress(OPJ_CODEC_J2K);
  GrowingBuffer out;
  opj_stream_t* stream = opj_stream_create(1 << 16, OPJ_FALSE);
  opj_stream_set_user_data(stream, &out, nullptr);
  opj_stream_set_write_function(stream, [](void* data, OPJ_SIZE_T n, void* user) -> OPJ_SIZE_T {
    auto* b = static_cast<GrowingBuffer*>(user);
    if (b->bytes.size() < b->at + n) b->bytes.resize(b->at + n);
    std::memcpy(b->bytes.data() + b->at, data, n);
    b->at += n;
    return n;
  });
  opj_stream_set_skip_function(stream, [](OPJ_OFF_T n, void* user) -> OPJ_OFF_T {
    static_cast<GrowingBuffer*>(user)->at += size_t(n);
    return n;
  });
  opj_stream_set_seek_function(stream, [](OPJ_OFF_T to, void* user) -> OPJ_BOOL {
    static_cast<GrowingBuffer*>(user)->at = size_t(to);
    return OPJ_TRUE;
  });
  const bool ok = opj_setup_encoder(codec, &p, image) && opj_start_compress(codec, image, stream) &&
                  opj_encode(codec, stream) && opj_end_compress(codec, stream);
  opj_stream_destroy(stream);
  opj_destroy_codec(codec);
  opj_image_destroy(image);
  EXPECT_TRUE(ok);
  return out.bytes;
}

TEST(FrameCodecs, LosslessJpeg2000DecodesToTheSamePixels) {
  const Image img = gradient(80, 40);
  const std::vector<uint8_t> j2k = encode_j2k(img);
  ASSERT_GT(j2k.size(), 100u);
  EXPECT_EQ(decode_jpeg2000_rgb(j2k.data(), j2k.size(), 80, 40), img.rgb);
  EXPECT_THROW(decode_jpeg2000_rgb(j2k.data(), j2k.size(), 40, 80), Error);
  EXPECT_THROW(decode_jpeg2000_rgb(j2k.data(), 60, 80, 40), Error);
  const std::vector<uint8_t> junk(100, 0x5a);
  EXPECT_THROW(decode_jpeg2000_rgb(junk.data(), junk.size(), 80, 40), Error);
}

// A synthetic slide as TIFF (3000 x 1700: levels 1500 x 850, 750 x 425 and
// 375 x 212 with a fractional downsample; no level a whole number of tiles).
struct TiffSlide : SyntheticTiff {
  TiffSlide() : SyntheticTiff(3000, 1700, 2) {}
};

// Whole levels and regions across tile edges, past the slide's edges and
// before its origin, at level-0 coordinates on each level's pixels.
void expect_same_reads(const Slide& dicom, const Slide& tiff, double tolerance) {
  ASSERT_EQ(dicom.levels().size(), tiff.levels().size());
  for (size_t l = 0; l < tiff.levels().size(); ++l) {
    EXPECT_EQ(dicom.levels()[l].width, tiff.levels()[l].width);
    EXPECT_EQ(dicom.levels()[l].height, tiff.levels()[l].height);
    EXPECT_DOUBLE_EQ(dicom.levels()[l].downsample, tiff.levels()[l].downsample);
  }
  struct Read {
    int level;
    int64_t lx, ly;
    int w, h;
  };
  const std::vector<Read> reads{
      {0, 0, 0, 3000, 1700}, {0, 250, 250, 300, 20}, {0, 2900, 1650, 200, 90},
      {0, -10, -5, 40, 30},  {1, 255, 511, 258, 3},  {1, 0, 0, 1500, 850},
      {2, 700, 400, 80, 40}, {3, 0, 0, 375, 212},    {3, 100, 50, 16, 16}};
  for (const Read& r : reads) {
    const double ds = tiff.levels()[size_t(r.level)].downsample;
    const int64_t x = std::llround(double(r.lx) * ds), y = std::llround(double(r.ly) * ds);
    const Image got = dicom.read_region(r.level, x, y, r.w, r.h);
    const Image want = tiff.read_region(r.level, x, y, r.w, r.h);
    if (tolerance == 0)
      EXPECT_EQ(got.rgb, want.rgb) << "level " << r.level << " at " << r.lx << "," << r.ly;
    else
      EXPECT_LT(mean_abs_difference(got.rgb, want.rgb), tolerance)
          << "level " << r.level << " at " << r.lx << "," << r.ly;
  }
}

TEST(DicomSlide, UncompressedFramesGiveTheTiffSlidesPixelsInBothLayouts) {
  TiffSlide s;
  for (bool sparse : {false, true}) {
    DicomWriterOptions o;
    o.jpeg = false;
    o.sparse = sparse;
    const std::string folder = s.dir / (sparse ? "sparse" : "full");
    write_dicom_slide(folder, *s.tiff, o);
    const auto dicom = open_slide(folder);
    EXPECT_EQ(dicom->reader(), "dicom");
    EXPECT_EQ(dicom->format(), "dicom");
    EXPECT_NEAR(dicom->mpp_x(), s.tiff->mpp_x(), 1e-6);
    EXPECT_NEAR(dicom->mpp_y(), s.tiff->mpp_y(), 1e-6);
    expect_same_reads(*dicom, *s.tiff, 0);
  }
}

TEST(DicomSlide, JpegFramesInOneOrManyFragmentsGiveNearlyTheTiffSlidesPixels) {
  TiffSlide s;
  DicomWriterOptions one;
  DicomWriterOptions many;
  many.fragment_kb = 1;  // every frame in several fragments, found by the offset table
  DicomWriterOptions sparse;
  sparse.sparse = true;
  sparse.offset_table = false;
  int n = 0;
  for (const DicomWriterOptions& o : {one, many, sparse}) {
    const std::string folder = s.dir / ("jpeg" + std::to_string(n++));
    write_dicom_slide(folder, *s.tiff, o);
    expect_same_reads(*open_slide(folder), *s.tiff, 3.0);  // JPEG once more
  }
  // Several fragments per frame and no offset table: which frame is which
  // cannot be known, and the error says so.
  many.offset_table = false;
  write_dicom_slide(s.dir / "untold", *s.tiff, many);
  try {
    open_slide(s.dir / "untold");
    ADD_FAILURE() << "opened";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no offset table"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("level-0.dcm"), std::string::npos) << e.what();
  }
}

// pydicom (an independent DICOM implementation) reads the writer's files:
// the frames it finds, and for uncompressed frames each frame's place and
// byte sum, which must be the sum of the same tile read by our reader.
TEST(DicomSlide, PydicomReadsTheWritersFilesAsOurReaderDoes) {
  TiffSlide s;
  DicomWriterOptions full, sparse, fragments;
  full.jpeg = sparse.jpeg = false;
  sparse.sparse = true;
  fragments.fragment_kb = 1;
  int n = 0;
  for (const DicomWriterOptions& o : {full, sparse, fragments}) {
    const std::string folder = s.dir / ("py" + std::to_string(n++));
    write_dicom_slide(folder, *s.tiff, o);
    const testing::CommandResult r = testing::run_raw(
        "/usr/bin/python3 " + std::string(HISTOCNN_SOURCE_DIR) + "/tests/data/dicom_check.py " +
        folder + "/level-0.dcm " + folder + "/level-3.dcm 2>&1");
    if (r.status == 2 || r.status == 127)
      GTEST_SKIP() << "pydicom (python3-pydicom) is not installed";
    ASSERT_EQ(r.status, 0) << r.output;
    const auto dicom = open_slide(folder);
    std::istringstream lines(r.output);
    for (int level : {0, 3}) {
      std::string name, organisation;
      int64_t width = 0, height = 0, frames = 0, found = 0;
      lines >> name >> organisation >> width >> height >> frames >> found;
      EXPECT_EQ(organisation, o.sparse ? "TILED_SPARSE" : "TILED_FULL") << r.output;
      EXPECT_EQ(width, dicom->levels()[size_t(level)].width);
      EXPECT_EQ(height, dicom->levels()[size_t(level)].height);
      EXPECT_EQ(found, frames) << r.output;
      if (o.jpeg) continue;
      const double ds = dicom->levels()[size_t(level)].downsample;
      for (int64_t f = 0; f < frames; ++f) {
        int64_t column = 0, row = 0, sum = 0;
        char comma = 0;
        lines >> column >> comma >> row >> comma >> sum;
        const Image tile = dicom->read_region(level, std::llround(double(column - 1) * ds),
                                              std::llround(double(row - 1) * ds), o.tile, o.tile);
        int64_t ours = 0;
        for (uint8_t v : tile.rgb) ours += v;
        EXPECT_EQ(ours, sum) << "level " << level << " frame at " << column << "," << row;
      }
    }
  }
}

// A file whose pixel size is only in its Imaged Volume Width and Height
// (no Pixel Measures in the shared functional groups) still has its scale.
TEST(DicomSlide, PixelSizeFallsBackToTheImagedVolume) {
  TiffSlide s;
  write_dicom_slide(s.dir / "series", *s.tiff);
  for (const char* level : {"level-0.dcm", "level-1.dcm", "level-2.dcm", "level-3.dcm"}) {
    DcmFileFormat file;
    const std::string path = s.dir / (std::string("series/") + level);
    ASSERT_TRUE(file.loadFile(path.c_str()).good());
    delete file.getDataset()->remove(DCM_SharedFunctionalGroupsSequence);
    ASSERT_TRUE(file.saveFile(path.c_str()).good());
  }
  const auto dicom = open_slide(s.dir / "series");
  EXPECT_NEAR(dicom->mpp_x(), s.tiff->mpp_x(), 1e-4);  // FL: single precision
  EXPECT_NEAR(dicom->mpp_y(), s.tiff->mpp_y(), 1e-4);
}

TEST(DicomSlide, AnyFileOfTheSeriesOrItsFolderOpensTheWholeSlide) {
  TiffSlide s;
  write_dicom_slide(s.dir / "series", *s.tiff);
  const auto by_folder = open_slide(s.dir / "series");
  const auto by_file = open_slide(s.dir / "series/level-2.dcm");
  EXPECT_EQ(by_file->levels().size(), 4u);
  EXPECT_EQ(by_file->read_region(1, 600, 400, 100, 100).rgb,
            by_folder->read_region(1, 600, 400, 100, 100).rgb);
  EXPECT_TRUE(is_dicom_file(s.dir / "series/level-0.dcm"));
  EXPECT_FALSE(is_dicom_file(s.dir / "s.tif"));
  EXPECT_EQ(slide_name(s.dir / "series"), "series");
  EXPECT_EQ(slide_name(s.dir / "series/"), "series");
  EXPECT_EQ(slide_name(s.dir / "s.tif"), "s");
  // Many threads at once: frames read under each file's lock, tiles cached.
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 30; ++i) {
        const int64_t x = (t * 197 + i * 261) % 2800, y = (t * 53 + i * 137) % 1600;
        if (by_folder->read_region(0, x, y, 90, 70).rgb !=
            by_file->read_region(0, x, y, 90, 70).rgb)
          ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(DicomSlide, FoldersOfSeriesAreSlidesAndMixedFoldersAreRefusedWithReasons) {
  TiffSlide s;
  const fs::path cohort = fs::path(s.dir.path()) / "cohort";
  fs::create_directories(cohort);
  write_dicom_slide((cohort / "1.2.840.5").string(), *s.tiff);  // named like a UID
  write_dicom_slide((cohort / "b").string(), *s.tiff);
  fs::copy_file(s.dir / "s.tif", cohort / "c.tif");
  const std::vector<std::string> slides = slides_in_folder(cohort.string());
  ASSERT_EQ(slides.size(), 3u);
  EXPECT_EQ(slide_name(slides[0]), "1.2.840.5");
  EXPECT_EQ(slide_name(slides[1]), "b");
  EXPECT_EQ(slide_name(slides[2]), "c");
  EXPECT_EQ(slides_in_folder((cohort / "b").string() + "/"),
            (std::vector<std::string>{(cohort / "b").string()}));
  // A slide goes by its barcode when the file records one: TCGA's in the
  // Imaging Data Commons do, under folders named by UIDs. A barcode that is
  // no safe folder name is not used.
  DicomWriterOptions tcga, hostile;
  tcga.container_id = "TCGA-AA-3512-01Z-00-DX1";
  hostile.container_id = "../x";
  write_dicom_slide((cohort / "1.2.840.7").string(), *s.tiff, tcga);
  write_dicom_slide((cohort / "1.2.840.8").string(), *s.tiff, hostile);
  EXPECT_EQ(slide_name((cohort / "1.2.840.7").string()), "TCGA-AA-3512-01Z-00-DX1");
  EXPECT_EQ(slide_name((cohort / "1.2.840.7/level-1.dcm").string()), "TCGA-AA-3512-01Z-00-DX1");
  EXPECT_EQ(slide_file_name((cohort / "1.2.840.7").string()), "1.2.840.7");
  EXPECT_EQ(slide_name((cohort / "1.2.840.8").string()), "1.2.840.8");
  fs::remove_all(cohort / "1.2.840.7");
  fs::remove_all(cohort / "1.2.840.8");
  // Two series in one folder: each is opened by one of its files.
  fs::copy_file(cohort / "b" / "level-0.dcm", cohort / "1.2.840.5" / "other-0.dcm");
  EXPECT_EQ(slides_in_folder((cohort / "1.2.840.5").string()).size(), 2u);
  EXPECT_THROW(require_slide_file((cohort / "1.2.840.5").string()), Error);
  EXPECT_THROW(open_slide((cohort / "1.2.840.5").string()), Error);
  // A folder with no series.
  fs::create_directories(cohort / "empty");
  try {
    require_slide_file((cohort / "empty").string());
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no DICOM whole-slide series"), std::string::npos);
  }
}

TEST(DicomSlide, DamagedFilesAreOneLineErrorsNamingTheFile) {
  TiffSlide s;
  write_dicom_slide(s.dir / "series", *s.tiff);
  const std::string level0 = s.dir / "series/level-0.dcm";
  // Cut in the middle of the frames: opening may pass (frames are read
  // lazily), reading the lost frames must not.
  fs::resize_file(level0, fs::file_size(level0) / 2);
  try {
    const auto slide = open_slide(s.dir / "series");
    slide->read_region(0, 0, 0, 3000, 1700);
    ADD_FAILURE() << "read a cut file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("level-0.dcm"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  // A file that only starts like DICOM.
  std::ofstream(s.dir / "fake.dcm") << std::string(128, '\0') << "DICMgarbage";
  EXPECT_THROW(open_slide(s.dir / "fake.dcm"), Error);
}

}  // namespace
}  // namespace histocnn
