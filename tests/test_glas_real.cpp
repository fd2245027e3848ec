// The real GlaS train split: $HISTOCNN_GLAS_DIR, else ../shared/data/glas-train
// beside the checkout (never committed). Skips, saying where it looked, when
// the folder is absent.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "data/dataset.h"
#include "data/image.h"
#include "data/pen_ink.h"

namespace histocnn {
namespace {

const std::string kGlas = std::getenv("HISTOCNN_GLAS_DIR") ? std::getenv("HISTOCNN_GLAS_DIR")
                                                           : HISTOCNN_SOURCE_DIR
                              "/../shared/data/glas-train";

TEST(GlasReal, ReadsTheReleaseAndGroupsPatients) {
  if (!std::filesystem::exists(kGlas + "/Grade.csv"))
    GTEST_SKIP() << kGlas << "/Grade.csv is absent (set HISTOCNN_GLAS_DIR to the GlaS folder)";
  const GlasFolder folder = open_glas_folder(kGlas, "train");
  ASSERT_EQ(folder.images.size(), 85u);
  int malignant = 0;
  std::set<std::string> patients;
  for (const auto& im : folder.images) malignant += im.label, patients.insert(im.patient);
  EXPECT_EQ(malignant, 48);
  EXPECT_EQ(patients.size(), 15u);
  const auto folds = patient_folds(folder.images, 5, 1);
  for (size_t i = 0; i < folds.size(); ++i)
    for (size_t j = 0; j < folds.size(); ++j)
      if (folder.images[i].patient == folder.images[j].patient) {
        EXPECT_EQ(folds[i], folds[j]);
      }
  CropOptions crops;
  crops.benign_crops = 4, crops.malignant_crops = 4;
  const ExampleSet set = build_examples(folder.images, crops, 64, 64, 2);
  EXPECT_EQ(set.examples.size(), 8u);
}

// The image averaged over f x f blocks: a slide's thumbnail at f times
// the scan's pixel size.
Image box_downsampled(const Image& image, int f) {
  Image out;
  out.width = image.width / f;
  out.height = image.height / f;
  out.rgb.resize(size_t(out.width) * out.height * 3);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < f; ++dy)
          for (int dx = 0; dx < f; ++dx) sum += image.row(y * f + dy)[3 * (x * f + dx) + c];
        out.row(y)[3 * x + c] = uint8_t((sum + f * f / 2) / (f * f));
      }
  return out;
}

// Dark nuclei fall in the blue ink palette at the scan's resolution, but
// never as a stroke: at every thumbnail scale no H&E region of palette
// pixels reaches a tenth of the smallest stroke (the test of the method in
// data/pen_ink.h; GlaS carries no pen marks).
TEST(GlasReal, HAndEIsNotPenInkAtAnyThumbnailScale) {
  if (!std::filesystem::exists(kGlas + "/Grade.csv"))
    GTEST_SKIP() << kGlas << "/Grade.csv is absent (set HISTOCNN_GLAS_DIR to the GlaS folder)";
  const GlasFolder folder = open_glas_folder(kGlas, "train");
  int64_t palette_at_full_scale = 0, pixels = 0;
  for (const auto& im : folder.images) {
    const Image scan = load_image(im.path);
    for (int f : {1, 2, 4, 8, 16}) {
      const Image thumbnail = f == 1 ? scan : box_downsampled(scan, f);
      const double um2 = 0.62005 * 0.62005 * f * f;  // GlaS: 0.62 um per pixel
      const std::vector<uint8_t> ink =
          find_pen_ink(thumbnail, int64_t(std::ceil(kMinPenStrokeUm2 / 10 / um2)));
      EXPECT_EQ(std::count(ink.begin(), ink.end(), 1), 0) << im.path << " at 1/" << f;
      if (f > 1) continue;
      const std::vector<uint8_t> palette = find_pen_ink(thumbnail, 0);
      palette_at_full_scale += std::count(palette.begin(), palette.end(), 1);
      pixels += int64_t(palette.size());
    }
  }
  // Why strokes, not pixels: 0.46% of all GlaS pixels are in the palette.
  EXPECT_GT(palette_at_full_scale, pixels / 1000);
}

}  // namespace
}  // namespace histocnn
