// Data: Grade.csv edge cases, image decoding errors, crops, folds and
// augmentation (the loader: test_loader.cpp).
#include <gtest/gtest.h>
#include <omp.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/grade_csv.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/synth.h"
#include "test_util.h"
#include "tiff_file.h"

namespace histocnn {
namespace {

using testing::TempDir;

TEST(GradeCsv, AcceptsGlasReleaseQuirks) {
  // Leading spaces, CR-only line ends, columns reordered, BOM, blank lines.
  const std::string cr =
      "\xEF\xBB\xBFpatient ID,name, grade (GlaS),grade (Sirinukunwattana et al. 2015)\r"
      " 2,train_1, malignant, moderately differentiated\r\r"
      "13, train_12, Benign, healthy\r";
  const auto rows = parse_grade_csv(cr, "Grade.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].name, "train_1");
  EXPECT_EQ(rows[0].patient, "2");
  EXPECT_EQ(rows[0].label, 1);
  EXPECT_EQ(rows[1].label, 0);
  EXPECT_EQ(rows[1].subgrade, "healthy");
  const std::string crlf = "name,patient ID,grade (GlaS)\r\ntrain_3,4, benign\r\n";
  EXPECT_EQ(parse_grade_csv(crlf, "x").size(), 1u);
  const std::string lf_no_final_newline = "name,patient ID,grade (GlaS)\ntrain_3,4, malignant";
  EXPECT_EQ(parse_grade_csv(lf_no_final_newline, "x")[0].label, 1);
}

void expect_error(const std::string& content, const std::string& fragment) {
  try {
    parse_grade_csv(content, "data/Grade.csv");
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("data/Grade.csv"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line only";
  }
}

TEST(GradeCsv, RejectsMalformedContentWithOneLineErrors) {
  expect_error("", "empty file");
  expect_error("name,grade (GlaS)\ntrain_1, benign\n", "header must name");
  expect_error("name,patient ID,grade (GlaS)\ntrain_1,1, adenoma\n",
               "neither benign nor malignant");
  expect_error("name,patient ID,grade (GlaS)\ntrain_1,1\n", "line 2");
  expect_error("name,patient ID,grade (GlaS)\ntrain_1,1,benign\ntrain_1,2,benign\n",
               "listed twice");
  expect_error("name,patient ID,grade (GlaS)\n", "no image rows");
  expect_error("name,patient ID,grade (GlaS)\n,1,benign\n", "empty image name");
}

TEST(Images, DecodesAndRejectsBadFilesByName) {
  TempDir dir;
  Image rgb;
  rgb.width = 40, rgb.height = 30;
  rgb.rgb.assign(40 * 30 * 3, 0);
  for (size_t i = 0; i < rgb.rgb.size(); ++i) rgb.rgb[i] = uint8_t(i * 7);
  save_image(dir / "a.png", rgb);
  save_image(dir / "a.bmp", rgb);
  EXPECT_EQ(load_image(dir / "a.png").rgb, rgb.rgb);
  EXPECT_EQ(load_image(dir / "a.bmp").rgb, rgb.rgb);

  auto expect_fail = [](const std::string& path, const std::string& fragment) {
    try {
      load_image(path);
      FAIL() << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  const std::string png = read_file(dir / "a.png");
  write_file_atomically(dir / "truncated.png", png.substr(0, png.size() / 2));
  expect_fail(dir / "truncated.png", "corrupt or truncated");
  write_file_atomically(dir / "garbage.bmp", "this is not an image at all");
  expect_fail(dir / "garbage.bmp", "not a readable image");
  write_file_atomically(dir / "empty.png", "");
  expect_fail(dir / "empty.png", "empty image file");
  expect_fail(dir / "missing.png", "cannot open");
  write_file_atomically(dir / "slide.tif", std::string("II*\0\x08\0\0\0", 8));
  expect_fail(dir / "slide.tif", "not a readable TIFF");
}

uint32_t crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

std::string big_endian(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

// A 16-bit RGB PNG of one colour, zlib "stored" (uncompressed) blocks.
std::string sixteen_bit_png(int width, int height, uint16_t value) {
  std::string raw;
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    for (int x = 0; x < width * 3; ++x) raw += {char(value >> 8), char(value & 0xFF)};
  }
  std::string z = {0x78, 0x01, 0x01};  // zlib header; one final stored block
  const uint16_t len = uint16_t(raw.size()), nlen = uint16_t(~len);
  z += {char(len & 0xFF), char(len >> 8), char(nlen & 0xFF), char(nlen >> 8)};
  z += raw;
  uint32_t a = 1, b = 0;
  for (unsigned char c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  z += big_endian((b << 16) | a);
  auto chunk = [](const std::string& type, const std::string& data) {
    return big_endian(uint32_t(data.size())) + type + data + big_endian(crc32(type + data));
  };
  std::string ihdr = big_endian(width) + big_endian(height) + std::string{16, 2, 0, 0, 0};
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", z) +
         chunk("IEND", "");
}

// Evaluation plans crops from image sizes read without decoding.
// PNGs are written by libpng (data/image.cpp): rows of any width round-trip
// exactly, and what it cannot write is an error naming the file.
TEST(Images, PngsOfAnyShapeRoundTripAndAnEmptyOneIsRefused) {
  TempDir dir;
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{1, 1}, {1, 7}, {7, 1}, {1001, 3}}) {
    Image image;
    image.width = w, image.height = h;
    image.rgb.resize(size_t(w) * h * 3);
    for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = uint8_t(i * 131 + i / 7);
    save_image(dir / "shape.png", image);
    const Image back = load_image(dir / "shape.png");
    EXPECT_EQ(back.width, w);
    EXPECT_EQ(back.height, h);
    EXPECT_EQ(back.rgb, image.rgb) << w << "x" << h;
  }
  try {
    save_image(dir / "empty.png", Image{});
    FAIL() << "an empty image was written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("empty.png: PNG encoding failed"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "empty.png"));
}

TEST(Images, SizeFromTheHeaderMatchesTheDecodedImage) {
  TempDir dir;
  Image rgb;
  rgb.width = 41, rgb.height = 23;
  rgb.rgb.assign(41 * 23 * 3, 90);
  for (const char* name : {"a.png", "a.bmp", "a.jpg"}) {
    save_image(dir / name, rgb);
    EXPECT_EQ(read_image_size(dir / name), std::make_pair(41, 23)) << name;
  }
  testing::write_tiff(dir / "a.tif", rgb, false);
  EXPECT_EQ(read_image_size(dir / "a.tif"), std::make_pair(41, 23));
  write_file_atomically(dir / "garbage.png", "this is not an image at all");
  for (const std::string& path : {dir / "garbage.png", dir / "missing.png"}) {
    try {
      read_image_size(path);
      FAIL() << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Images, GrayscaleIsRejectedRgbaAndSixteenBitAreConverted) {
  TempDir dir;
  std::vector<uint8_t> gray(16 * 16, 100), rgba(16 * 16 * 4, 200);
  for (size_t i = 3; i < rgba.size(); i += 4) rgba[i] = 17;  // alpha
  ASSERT_TRUE(stbi_write_png((dir / "gray.png").c_str(), 16, 16, 1, gray.data(), 16));
  ASSERT_TRUE(stbi_write_png((dir / "rgba.png").c_str(), 16, 16, 4, rgba.data(), 64));
  try {
    load_image(dir / "gray.png");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("grayscale"), std::string::npos);
  }
  const Image from_rgba = load_image(dir / "rgba.png");
  EXPECT_EQ(from_rgba.width, 16);
  EXPECT_EQ(from_rgba.rgb[0], 200);
  EXPECT_EQ(from_rgba.rgb.size(), 16u * 16 * 3);
  // A 16-bit RGB PNG (stb_image_write cannot write one): reduced to 8 bits.
  write_file_atomically(dir / "deep.png", sixteen_bit_png(4, 3, 0xABCD));
  const Image deep = load_image(dir / "deep.png");
  EXPECT_EQ(deep.width, 4);
  EXPECT_EQ(deep.rgb[0], 0xAB);
}

// A synthetic GlaS folder in `dir`, its train split opened.
GlasFolder synthetic_train_folder(const TempDir& dir, int images, int images_per_patient, int width,
                                  int height) {
  SynthOptions synth;
  synth.images = images;
  synth.images_per_patient = images_per_patient;
  synth.width = width, synth.height = height;
  write_synthetic_dataset(dir.path(), synth);
  return open_glas_folder(dir.path(), "train");
}

TEST(Dataset, FoldsGroupPatientsAndCropsAreDeterministic) {
  TempDir dir;
  const GlasFolder folder = synthetic_train_folder(dir, 12, 2, 120, 90);
  ASSERT_EQ(folder.images.size(), 12u);
  const auto folds = patient_folds(folder.images, 3, 7);
  for (size_t i = 0; i < folds.size(); ++i)
    for (size_t j = 0; j < folds.size(); ++j)
      if (folder.images[i].patient == folder.images[j].patient) {
        EXPECT_EQ(folds[i], folds[j]);
      }
  EXPECT_EQ(std::set<int>(folds.begin(), folds.end()).size(), 3u);
  for (int f = 0; f < 3; ++f) {  // stratified: every fold holds both classes
    std::set<int> labels;
    for (size_t i = 0; i < folds.size(); ++i)
      if (folds[i] == f) labels.insert(folder.images[i].label);
    EXPECT_EQ(labels.size(), 2u) << "fold " << f;
  }

  CropOptions crops;
  crops.crop_width = crops.crop_height = 64;
  crops.benign_crops = 10, crops.malignant_crops = 9;
  const ExampleSet a = build_examples(folder.images, crops, 32, 32, 1);
  const ExampleSet b = build_examples(folder.images, crops, 32, 32, 3);
  ASSERT_EQ(a.examples.size(), 19u);
  EXPECT_EQ(a.pixels, b.pixels);
  for (size_t i = 0; i < a.examples.size(); ++i) {
    EXPECT_EQ(a.examples[i].x, b.examples[i].x);
    EXPECT_LE(a.examples[i].x + 64, 120);
  }
  // Data parallelism decodes a share of the images per process: an image's
  // crops do not depend on which other images were decoded.
  const ExampleSet even =
      build_examples(folder.images, crops, 32, 32, 2, [](size_t image) { return image % 2 == 0; });
  const size_t per = 32 * 32 * 3;
  for (size_t e = 0; e < a.examples.size(); ++e) {
    const bool decoded = a.examples[e].image_index % 2 == 0;
    const std::vector<uint8_t> want(a.pixels.begin() + long(e * per),
                                    a.pixels.begin() + long((e + 1) * per));
    const std::vector<uint8_t> got(even.pixels.begin() + long(e * per),
                                   even.pixels.begin() + long((e + 1) * per));
    if (decoded) {
      EXPECT_EQ(got, want) << "example " << e;
      EXPECT_EQ(even.examples[e].x, a.examples[e].x);
    } else {
      EXPECT_EQ(got, std::vector<uint8_t>(per, 0)) << "not decoded here";
    }
  }
  crops.seed = 2;
  EXPECT_NE(build_examples(folder.images, crops, 32, 32, 2).pixels, a.pixels);
  crops.crop_width = 200;
  try {
    build_examples(folder.images, crops, 32, 32, 2);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("smaller than the 200x64 crop"), std::string::npos)
        << e.what();
  }
}

// Evaluation crops of a tile no larger than the crop all sit at (0, 0):
// each image gets one, planned from its header before anything is decoded.
// Crops of a larger image keep their distinct positions.
TEST(Dataset, DistinctPositionsScoreEachCropPositionOnce) {
  TempDir dir;
  const GlasFolder folder = synthetic_train_folder(dir, 6, 1, 64, 48);
  CropOptions crops;
  crops.crop_width = 64, crops.crop_height = 48;  // the whole tile: one position
  crops.classes = 2;
  crops.class_crops = {0, 0};
  for (const auto& im : folder.images) crops.class_crops[size_t(im.label)] += 4;
  const ExampleSet all = build_examples(folder.images, crops, 16, 16, 2);
  ASSERT_EQ(all.examples.size(), 24u);
  EXPECT_EQ(all.repeated_positions, 0u);
  crops.distinct_positions = true;
  const ExampleSet once = build_examples(folder.images, crops, 16, 16, 2);
  ASSERT_EQ(once.examples.size(), 6u);
  EXPECT_EQ(once.repeated_positions, 18u);
  ASSERT_EQ(once.pixels.size(), 6u * 16 * 16 * 3);
  EXPECT_NE(repeated_positions_note(once).find("18 of the 24 crops"), std::string::npos);
  std::set<int> images;
  for (size_t e = 0; e < once.examples.size(); ++e) {
    images.insert(once.examples[e].image_index);
    // The kept example is the image's first, with its pixels.
    size_t first = 0;
    while (all.examples[first].image_index != once.examples[e].image_index) ++first;
    EXPECT_EQ(once.examples[e].label, all.examples[first].label);
    EXPECT_TRUE(
        std::equal(once.pixels_of(e), once.pixels_of(e) + 16 * 16 * 3, all.pixels_of(first)));
  }
  EXPECT_EQ(images.size(), 6u);
  // Processes that decode a share plan the same crops (from the headers).
  EXPECT_EQ(build_examples(folder.images, crops, 16, 16, 2, [](size_t i) { return i % 2 == 0; })
                .examples.size(),
            6u);
  // Two positions (x = 0 or 1): at most two crops of each image.
  crops.crop_width = 63;
  const ExampleSet two = build_examples(folder.images, crops, 16, 16, 2);
  std::map<int, std::set<int>> xs;
  for (const Example& e : two.examples) EXPECT_TRUE(xs[e.image_index].insert(e.x).second);
  EXPECT_EQ(two.examples.size() + two.repeated_positions, 24u);
  EXPECT_GE(two.examples.size(), 6u);
  EXPECT_LE(two.examples.size(), 12u);
  // Room to move: what coincides by chance is dropped after cutting.
  crops.crop_width = crops.crop_height = 16;
  const ExampleSet spread = build_examples(folder.images, crops, 16, 16, 2);
  crops.distinct_positions = false;
  std::set<std::tuple<int, int, int>> positions;
  for (const Example& e : build_examples(folder.images, crops, 16, 16, 2).examples)
    positions.insert({e.image_index, e.x, e.y});
  EXPECT_EQ(spread.examples.size(), positions.size());
  EXPECT_EQ(spread.repeated_positions, 24u - positions.size());
  EXPECT_GT(positions.size(), 20u);
  // A set that redraws its crops each epoch has no fixed positions.
  crops.distinct_positions = crops.fresh_each_epoch = true;
  EXPECT_THROW(build_examples(folder.images, crops, 16, 16, 2), Error);
}

// The stain target reads every image of a GlaS-sized set, and a fixed
// random 1000 of Kather's 100,000 tiles.
TEST(Dataset, StainTargetSamplesAtMostAThousandImages) {
  const std::vector<int> glas = stain_target_sample(85);
  ASSERT_EQ(glas.size(), 85u);
  for (int i = 0; i < 85; ++i) EXPECT_EQ(glas[size_t(i)], i);
  const std::vector<int> kather = stain_target_sample(100000);
  ASSERT_EQ(kather.size(), kStainTargetImages);
  EXPECT_TRUE(std::is_sorted(kather.begin(), kather.end()));
  EXPECT_EQ(std::set<int>(kather.begin(), kather.end()).size(), kStainTargetImages);
  EXPECT_GE(kather.front(), 0);
  EXPECT_LT(kather.back(), 100000);
  EXPECT_GT(kather.back(), 90000);                 // spread over the set, not its first names
  EXPECT_EQ(stain_target_sample(100000), kather);  // fixed: every process and resume alike
  EXPECT_EQ(stain_target_sample(1000).size(), 1000u);
}

TEST(Dataset, FreshCropsAreNewWindowsOfTheScaledImageEveryEpoch) {
  TempDir dir;
  const GlasFolder folder = synthetic_train_folder(dir, 6, 2, 160, 120);
  CropOptions crops;
  crops.crop_width = crops.crop_height = 80;  // half the image -> 32 px: scale 0.4
  crops.benign_crops = 8, crops.malignant_crops = 8;
  crops.fresh_each_epoch = true;
  crops.max_background = 0.5f;
  ExampleSet set = build_examples(folder.images, crops, 32, 32, 2);
  ASSERT_EQ(set.sources.size(), 6u);
  EXPECT_EQ(set.sources[0].width, 64);  // 160 * 32 / 80
  EXPECT_EQ(set.sources[0].height, 48);
  const std::vector<uint8_t> first = set.pixels;
  const size_t per = 32 * 32 * 3;
  auto check_windows = [&](const ExampleSet& s) {
    for (size_t e = 0; e < s.examples.size(); ++e) {
      const Example& ex = s.examples[e];
      const Image& src = s.sources[size_t(ex.image_index)];
      ASSERT_GE(ex.x, 0);
      ASSERT_LE(ex.x + 32, src.width);
      ASSERT_LE(ex.y + 32, src.height);
      for (int row = 0; row < 32; ++row)
        ASSERT_EQ(0, std::memcmp(s.pixels.data() + e * per + size_t(row) * 96,
                                 src.row(ex.y + row) + size_t(ex.x) * 3, 96))
            << "example " << e << " row " << row;
    }
  };
  check_windows(set);
  recrop(set, 11);
  check_windows(set);
  const std::vector<uint8_t> epoch_11 = set.pixels;
  EXPECT_NE(epoch_11, first);
  recrop(set, 12);
  EXPECT_NE(set.pixels, epoch_11);
  recrop(set, 11);
  EXPECT_EQ(set.pixels, epoch_11) << "a resumed run draws the same crops";
  CropOptions plain = crops;
  plain.fresh_each_epoch = false;
  ExampleSet fixed = build_examples(folder.images, plain, 32, 32, 1);
  EXPECT_THROW(recrop(fixed, 1), Error);
}

TEST(Dataset, MissingImageAndMissingFolderAreNamed) {
  TempDir dir;
  write_file_atomically(dir / "Grade.csv", "name,patient ID,grade (GlaS)\ntrain_1,1, benign\n");
  try {
    open_glas_folder(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train_1"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  EXPECT_THROW(open_glas_folder(dir / "nope"), Error);
}

TEST(Augment, IsSeededAndRotationsPreserveContent) {
  std::vector<uint8_t> hwc(8 * 8 * 3);
  for (size_t i = 0; i < hwc.size(); ++i) hwc[i] = uint8_t(i);
  AugmentOptions all{true, true, 0.05f};
  std::vector<float> a(3 * 64), b(3 * 64), plain(3 * 64);
  augment_to_chw(hwc.data(), 8, 8, all, 42, a.data());
  augment_to_chw(hwc.data(), 8, 8, all, 42, b.data());
  EXPECT_EQ(a, b);
  AugmentOptions geometric{true, true, 0.0f};
  augment_to_chw(hwc.data(), 8, 8, {}, 0, plain.data());
  for (uint64_t seed = 0; seed < 16; ++seed) {
    augment_to_chw(hwc.data(), 8, 8, geometric, seed, a.data());
    std::multiset<float> x(a.begin(), a.end()), y(plain.begin(), plain.end());
    EXPECT_EQ(x, y) << "flips and rotations permute pixels";
  }
  EXPECT_FLOAT_EQ(plain[1], 3 / 255.0f);  // channel 0 of pixel (1, 0)
}

}  // namespace
}  // namespace histocnn

namespace histocnn {
namespace {

TEST(Normalization, TextRoundTripsEveryFloatExactly) {
  Normalization n;
  n.mean[0] = 0.123456789f;
  n.mean[1] = 1.0f / 3.0f;
  n.mean[2] = 0.7f;
  n.stdev[0] = 0.2718281828f;
  n.stdev[1] = 1e-3f + 1e-10f;
  n.stdev[2] = 0.31415926f;
  const Normalization back = Normalization::parse(n.text(), "test");
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(back.mean[c], n.mean[c]);
    EXPECT_EQ(back.stdev[c], n.stdev[c]);
  }
}

TEST(AtomicFiles, ConcurrentWritersNeverCollideAndAppendsKeepEveryLine) {
  testing::TempDir dir;
  const std::string path = dir / "results.jsonl";
  // Several writers of one path (threads share a pid: unique temporaries).
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        write_file_atomically(dir / "shared.txt", std::string(1000, char('a' + t)));
        append_line_atomically(
            path, "{\"writer\": " + std::to_string(t) + ", \"i\": " + std::to_string(i) + "}");
      }
    });
  for (auto& w : writers) w.join();
  const std::string shared = read_file(dir / "shared.txt");
  ASSERT_EQ(shared.size(), 1000u);
  EXPECT_EQ(shared, std::string(1000, shared[0])) << "one writer's whole content";
  const std::string lines = read_file(path);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 200) << "no append lost";
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
  EXPECT_THROW(read_file(dir / "missing"), Error);
  EXPECT_THROW(write_file_atomically(dir / "no/such/dir/file", "x"), Error);
}

}  // namespace
}  // namespace histocnn
