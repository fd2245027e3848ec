// The real GlaS train split: $HISTOCNN_GLAS_DIR, else ../shared/data/glas-train
// beside the checkout (never committed). Skips, saying where it looked, when
// the folder is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "data/dataset.h"

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

}  // namespace
}  // namespace histocnn
