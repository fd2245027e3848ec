// A folder of slides as the public archives download it: the GDC's one
// folder per file and the Imaging Data Commons' collection / patient / study
// / series tree must each make a cohort as they are, with nothing moved.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/paths.h"
#include "data/dicom_writer.h"
#include "data/slide.h"
#include "synthetic_tiff.h"
#include "test_util.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> names_of(const std::vector<std::string>& slides) {
  std::vector<std::string> names;
  for (const std::string& slide : slides) names.push_back(slide_name(slide));
  std::sort(names.begin(), names.end());
  return names;
}

struct SmallSlide : SyntheticTiff {
  SmallSlide() : SyntheticTiff(700, 520, 1) {}
  // A DICOM series at `folder` (its parents made) with this barcode.
  void write_series(const fs::path& folder, const std::string& barcode) const {
    fs::create_directories(folder.parent_path());
    DicomWriterOptions o;
    o.container_id = barcode;
    write_dicom_slide(folder.string(), *tiff, o);
  }
};

TEST(SlideFolders, ArchiveDownloadTreesAreCohortsAsTheyAre) {
  SmallSlide s;
  const fs::path root = fs::path(s.dir.path()) / "downloads";
  // idc-index's default layout: %collection_id/%PatientID/%StudyInstanceUID/
  // %Modality_%SeriesInstanceUID, files named by UUIDs.
  s.write_series(root / "tcga_coad/TCGA-AA-0001/1.2.3.1/SM_1.2.3.1.9", "TCGA-AA-0001-01Z-00-DX1");
  s.write_series(root / "tcga_coad/TCGA-AA-0002/1.2.3.2/SM_1.2.3.2.9", "TCGA-AA-0002-01Z-00-DX1");
  // gdc-client: <file UUID>/<file name>, beside its logs.
  const fs::path gdc = root / "gdc/3f1c2b4e-0000-4d7a-9c55-1a2b3c4d5e6f";
  fs::create_directories(gdc / "logs");
  fs::copy_file(s.dir / "s.tif", gdc / "TCGA-AA-0003-01Z-00-DX1.tif");
  std::ofstream(gdc / "logs/TCGA-AA-0003-01Z-00-DX1.tif.parcel") << "log\n";
  std::ofstream(root / "gdc/MANIFEST.txt") << "id\tfilename\n";
  // A flat download (s5cmd into one folder): two series side by side.
  s.write_series(s.dir / "one", "TCGA-AA-0004-01Z-00-DX1");
  s.write_series(s.dir / "two", "TCGA-AA-0005-01Z-00-DX1");
  fs::create_directories(root / "flat");
  for (const char* series : {"one", "two"})
    for (const auto& file : list_folder(s.dir / series).files)
      fs::copy_file(
          file, root / "flat" / (std::string(series) + "-" + fs::path(file).filename().string()));
  // What is not to be read: a hidden folder, a link back up (a cycle), a
  // second link to a folder already read, a dangling link.
  fs::create_directories(root / ".trash");
  fs::copy_file(s.dir / "s.tif", root / ".trash/old.tif");
  fs::create_directory_symlink(root, root / "tcga_coad/loop");
  fs::create_directory_symlink(root / "gdc", root / "gdc-again");
  fs::create_symlink(root / "gone.tif", root / "dangling.tif");

  const std::vector<std::string> slides = slides_in_folder(root.string() + "/");
  EXPECT_EQ(names_of(slides),
            (std::vector<std::string>{"TCGA-AA-0001-01Z-00-DX1", "TCGA-AA-0002-01Z-00-DX1",
                                      "TCGA-AA-0003-01Z-00-DX1", "TCGA-AA-0004-01Z-00-DX1",
                                      "TCGA-AA-0005-01Z-00-DX1"}));
  EXPECT_TRUE(std::is_sorted(slides.begin(), slides.end()));
  EXPECT_NE(std::find(slides.begin(), slides.end(),
                      (root / "tcga_coad/TCGA-AA-0001/1.2.3.1/SM_1.2.3.1.9").string()),
            slides.end());
  EXPECT_NO_THROW(require_distinct_series(slides));
  for (const std::string& slide : slides) EXPECT_EQ(open_slide(slide)->width(), 700) << slide;
  // A patient's folder alone is a cohort too.
  EXPECT_EQ(names_of(slides_in_folder((root / "tcga_coad/TCGA-AA-0002").string())),
            (std::vector<std::string>{"TCGA-AA-0002-01Z-00-DX1"}));
}

TEST(SlideFolders, ATreeWithoutSlidesIsOneLineNamingTheFolder) {
  testing::TempDir dir;
  fs::create_directories(fs::path(dir.path()) / "a/b/c");
  std::ofstream(dir / "a/b/c/notes.txt") << "not a slide\n";
  std::ofstream(dir / "a/heatmap.png") << "not a slide either\n";
  try {
    slides_in_folder(dir / "a");
    ADD_FAILURE() << "found slides";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind(dir / "a", 0), 0u) << message;
    EXPECT_NE(message.find("no slide in this folder or below it"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(SlideFolders, ListingSkipsDanglingLinksWhereverTheyFall) {
  testing::TempDir dir;
  std::ofstream(dir / "a.txt") << "a";
  fs::create_directory(dir / "b");
  fs::create_symlink(dir / "missing", dir / "dangling");
  FolderEntries entries = list_folder(dir.path());
  EXPECT_EQ(entries.files, (std::vector<std::string>{dir / "a.txt"}));
  EXPECT_EQ(entries.folders, (std::vector<std::string>{dir / "b"}));
  // A folder of dangling links only: whatever order the folder is read in,
  // a dangling link comes last, and its failed lookup is not the listing's.
  fs::create_symlink(dir / "missing", dir / "b/one");
  fs::create_directory_symlink(dir / "missing-folder", dir / "b/two");
  entries = list_folder(dir / "b");
  EXPECT_TRUE(entries.files.empty() && entries.folders.empty());
  EXPECT_THROW(list_folder(dir / "missing"), Error);
}

}  // namespace
}  // namespace histocnn
