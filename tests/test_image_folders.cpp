// Class-folder datasets (data/image_folders.h): the layout torchvision's
// ImageFolder reads and Kather's NCT-CRC-HE-100K and LC25000 ship in, read
// as training data with its classes, malignant view, splits and patients;
// the same images as a GlaS folder select the same folds; train, eval and
// predict run on it end to end.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cli_fixture.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "data/grade_csv.h"
#include "data/image.h"
#include "data/image_folders.h"
#include "data/labels.h"
#include "data/synth.h"
#include "tiff_file.h"
#include "train/training_data.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;
using testing::error_of;
using testing::TempDir;

void write_tile(const fs::path& path, uint8_t shade) {
  fs::create_directories(path.parent_path());
  Image image;
  image.width = image.height = 8;
  image.rgb.assign(8 * 8 * 3, shade);
  if (path.extension() == ".tif")
    testing::write_tiff(path.string(), image, false);
  else
    save_image(path.string(), image);
}

// A synthetic GlaS folder of small images (64 x 48 pixels).
void write_small_glas(const std::string& folder, int images, int per_patient) {
  SynthOptions synth;
  synth.images = images;
  synth.images_per_patient = per_patient;
  synth.width = 64, synth.height = 48;
  write_synthetic_dataset(folder, synth);
}

TEST(FolderLabels, MalignantByNameReadsTheNamesPublicDatasetsUse) {
  for (const char* name : {"TUM", "tumour", "Tumor", "malignant", "colon_aca", "Adenocarcinoma",
                           "invasive carcinoma", "lung-cancer", "Metastases"})
    EXPECT_TRUE(malignant_by_name(name)) << name;
  // Kather's eight other classes, LC25000's benign colon, words that merely
  // contain a malignant word.
  for (const char* name : {"ADI", "BACK", "DEB", "LYM", "MUC", "MUS", "NORM", "STR", "colon_n",
                           "benign", "normal", "stumble", "acanthosis", "precancerous",
                           "non-tumour", "Non Tumor", "tumor_free", "benign tumour", "no cancer"})
    EXPECT_FALSE(malignant_by_name(name)) << name;
}

TEST(FolderLabels, SchemesFromFolderNames) {
  const std::vector<std::string> kather = {"ADI", "NORM", "STR", "TUM"};
  const LabelScheme all = folder_label_scheme("glas", kather, "", "d");
  EXPECT_EQ(all.name, "folders");
  EXPECT_EQ(all.classes, kather);
  EXPECT_EQ(all.malignant, (std::vector<bool>{false, false, false, true}));
  EXPECT_TRUE(all.from_class_folders());
  EXPECT_FALSE(all.ordered());

  const LabelScheme two = folder_label_scheme("folders=norm,TUM", kather, "", "d");
  EXPECT_EQ(two.classes, (std::vector<std::string>{"NORM", "TUM"}));  // the folders' spelling
  EXPECT_TRUE(two.ordered());

  // Folders named benign and malignant are the GlaS scheme, so a GlaS model
  // evaluates them; the folders' case does not matter.
  const LabelScheme glas = folder_label_scheme("glas", {"Benign", "Malignant"}, "", "d");
  EXPECT_EQ(glas.name, "glas");
  EXPECT_EQ(glas.classes, (std::vector<std::string>{"benign", "malignant"}));
  EXPECT_EQ(glas.malignant, (std::vector<bool>{false, true}));

  const LabelScheme chosen = folder_label_scheme("folders", kather, "STR, tum", "d");
  EXPECT_EQ(chosen.malignant, (std::vector<bool>{false, false, true, true}));
}

TEST(FolderLabels, RefusalsNameTheFolderAndTheFlag) {
  const std::vector<std::string> kather = {"ADI", "NORM", "TUM"};
  EXPECT_NE(error_of([&] {
              folder_label_scheme("folders=ADI,FOO", kather, "", "d");
            }).find("d has no class folder 'FOO' (it has ADI, NORM, TUM)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { folder_label_scheme("folders=ADI,NORM", kather, "", "d"); })
                .find("no class reads as malignant (ADI, NORM): name them with "
                      "--malignant-classes"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              folder_label_scheme("folders", kather, "ADI,NORM,TUM", "d");
            }).find("every class is malignant"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              folder_label_scheme("folders", kather, "XX", "d");
            }).find("--malignant-classes: 'XX'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              folder_label_scheme("grade5", kather, "", "d");
            }).find("--labels grade5: d holds class folders, not Grade.csv"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { folder_label_scheme("folders=ADI,adi", kather, "", "d"); }).find("distinct"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              folder_label_scheme("folders", {"TUM"}, "", "d");
            }).find("d: needs 2..64 class folders, found 1 (TUM)"),
            std::string::npos);
}

TEST(ImageFolders, ReadsClassesImagesAndNotesInSortedOrder) {
  TempDir dir;
  const fs::path root = dir.path();
  write_tile(root / "TUM/b.png", 80);
  write_tile(root / "TUM/a.tif", 90);  // any image format, by extension
  write_tile(root / "NORM/c.jpg", 200);
  write_tile(root / "ADI/d.png", 240);
  write_tile(root / ".hidden/e.png", 1);  // hidden folders are no class
  write_tile(root / "TUM/.f.png", 1);     // nor hidden files images
  write_file_atomically((root / "TUM/notes.txt").string(), "not an image");
  fs::create_directories(root / "empty");  // a folder without images is no class
  const GlasFolder folder = open_dataset_folder(root.string(), "train", "folders=NORM,TUM");
  EXPECT_EQ(folder.labels.classes, (std::vector<std::string>{"NORM", "TUM"}));
  ASSERT_EQ(folder.images.size(), 3u);
  EXPECT_EQ(folder.images[0].name, "NORM/c");
  EXPECT_EQ(folder.images[0].label, 0);
  EXPECT_EQ(folder.images[1].name, "TUM/a");
  EXPECT_EQ(folder.images[2].name, "TUM/b");
  EXPECT_EQ(folder.images[2].label, 1);
  EXPECT_EQ(folder.images[2].patient, "TUM/b");  // no patients.csv: its own patient
  EXPECT_EQ(fs::path(folder.images[2].path), root / "TUM/b.png");
  ASSERT_EQ(folder.notes.size(), 2u);
  EXPECT_NE(folder.notes[0].find("class folders left out by --labels folders=NORM,TUM: ADI"),
            std::string::npos);
  EXPECT_NE(folder.notes[1].find("no patients.csv, so every image is its own patient"),
            std::string::npos);
}

TEST(ImageFolders, SplitFoldersAndPatients) {
  TempDir dir;
  const fs::path root = dir.path();
  for (const char* split : {"train", "val"}) {
    write_tile(root / split / "normal/n1.png", 200);
    write_tile(root / split / "tumour/t1.png", 80);
  }
  write_file_atomically((root / "patients.csv").string(),
                        "image,patient\n"
                        "train/normal/n1.png,P1\r\n"
                        "train/tumour/t1.png, P1\n"
                        "\n"
                        "val/normal/n1.png,P2\n"
                        "val/tumour/t1.png,P3\n"
                        "other/left/out.png,P9\n");  // rows for other images are no error
  const GlasFolder train = open_dataset_folder(root.string(), "train", "glas");
  ASSERT_EQ(train.images.size(), 2u);
  EXPECT_EQ(train.images[0].name, "train/normal/n1");
  EXPECT_EQ(train.images[1].patient, "P1");
  EXPECT_TRUE(train.notes.empty());
  const GlasFolder val = open_dataset_folder(root.string(), "val", "glas");
  EXPECT_EQ(val.images[1].patient, "P3");

  // --split names a folder; all (or the root) holds splits, not classes.
  EXPECT_NE(error_of([&] {
              open_dataset_folder(root.string(), "testA");
            }).find("testA: no such split folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] { open_dataset_folder(root.string(), "all"); })
                .find("no class folders, but train, val hold folders: name the split with "
                      "--split"),
            std::string::npos);

  // patients.csv must cover the images, once each; one without rows is no
  // absent one.
  const std::pair<const char*, const char*> bad_patients[] = {
      {"image,patient\ntrain/normal/n1.png,P1\n",
       "patients.csv: no row for image train/tumour/t1.png"},
      {"image,patient\ntrain/normal/n1.png,P1\ntrain/normal/n1.png,P2\n",
       "line 3: train/normal/n1.png is listed with two patients (P1, P2)"},
      {"image,patient\n", "patients.csv: no row for image train/normal/n1.png"},
      {"file,case\n", "the header needs columns image and patient"},
      {"image,patient\ntrain/normal/n1.png\n", "line 2: fewer fields than the header"},
      {"", "patients.csv: empty"}};
  for (const auto& [content, message] : bad_patients) {
    write_file_atomically((root / "patients.csv").string(), content);
    EXPECT_NE(error_of([&] { open_dataset_folder(root.string(), "train"); }).find(message),
              std::string::npos)
        << content;
  }
}

// Tiles cut from TCGA slides name their slide: its participant is the
// patient, so a patient's MSI and MSS tiles never straddle a fold; one name
// without a barcode makes every image its own patient again.
TEST(ImageFolders, TcgaBarcodesInFileNamesGroupPatients) {
  TempDir dir;
  const fs::path root = dir.path();
  write_tile(root / "MSIMUT/blk-AAADLNDHLGPR-TCGA-AA-3512-01Z-00-DX1.png", 80);
  write_tile(root / "MSIMUT/blk-AAAFIYHTSVIE-TCGA-AA-3512-01Z-00-DX1.png", 90);
  write_tile(root / "MSS/blk-AABCGVYLDTTM-TCGA-CM-4744-01Z-00-DX1.png", 100);
  write_tile(root / "MSS/TCGA-AA-3512-01Z-00-DX1_12_40.png", 110);
  const GlasFolder folder = open_dataset_folder(root.string(), "train", "folders", "MSIMUT");
  ASSERT_EQ(folder.images.size(), 4u);
  EXPECT_EQ(folder.images[0].patient, "TCGA-AA-3512");
  EXPECT_EQ(folder.images[1].patient, "TCGA-AA-3512");
  EXPECT_EQ(folder.images[2].patient, "TCGA-AA-3512");  // its other class
  EXPECT_EQ(folder.images[3].patient, "TCGA-CM-4744");
  ASSERT_EQ(folder.notes.size(), 1u);
  EXPECT_NE(folder.notes[0].find("patients from the TCGA barcodes in the file names (2 patients"),
            std::string::npos)
      << folder.notes[0];

  write_tile(root / "MSS/blk-NOBARCODE.png", 120);
  const GlasFolder mixed = open_dataset_folder(root.string(), "train", "folders", "MSIMUT");
  EXPECT_EQ(mixed.images[2].patient, "MSS/TCGA-AA-3512-01Z-00-DX1_12_40");
  ASSERT_EQ(mixed.notes.size(), 1u);
  EXPECT_NE(mixed.notes[0].find("every image is its own patient"), std::string::npos);
}

// predict's folder arguments: every image below, sorted, without hidden
// files, hidden folders or GlaS masks.
TEST(ImageFolders, ImagesUnderAFolderAreFoundAtAnyDepthInOrder) {
  TempDir dir;
  const fs::path root = dir.path();
  write_tile(root / "b.png", 10);
  write_tile(root / "TUM/deep/c.tif", 20);
  write_tile(root / "TUM/a.jpg", 30);
  write_tile(root / "train_1_anno.bmp", 40);  // a GlaS mask
  write_tile(root / ".cache/d.png", 50);
  write_tile(root / "TUM/.e.png", 60);
  std::ofstream(root / "notes.txt") << "not an image";
  const std::vector<std::string> want = {
      (root / "TUM/a.jpg").string(), (root / "TUM/deep/c.tif").string(), (root / "b.png").string()};
  // A link back up is followed once, not around and around.
  fs::create_directory_symlink(root, root / "TUM/deep/loop");
  EXPECT_EQ(images_under(root.string()), want);
  fs::create_directories(root / "empty/.hidden");
  write_tile(root / "empty/.hidden/f.png", 70);
  EXPECT_NE(error_of([&] {
              images_under((root / "empty").string());
            }).find("empty: no images (bmp, png, jpg, tif) in this folder or below"),
            std::string::npos);
}

TEST(ImageFolders, NeitherLayoutIsAnError) {
  TempDir dir;
  write_file_atomically(dir / "readme.txt", "no images");
  EXPECT_NE(error_of([&] {
              open_dataset_folder(dir.path());
            }).find(": neither Grade.csv (the GlaS layout) nor class folders"),
            std::string::npos);
  EXPECT_NE(error_of([&] { open_dataset_folder(dir / "missing"); }).find("data folder not found"),
            std::string::npos);
}

// The same images as class folders with their patients select the same
// images for every fold as the Grade.csv they came from: the layouts are
// two spellings of one dataset.
TEST(ImageFolders, SelectTheSameFoldsAsTheirGlasFolder) {
  TempDir dir;
  write_small_glas(dir / "glas", 16, 2);
  std::string patients = "image,patient\n";
  for (const GradeRow& row : read_grade_csv(dir / "glas/Grade.csv")) {
    const std::string grade = row.label ? "malignant" : "benign";
    fs::create_directories(dir / ("folders/" + grade));
    fs::copy_file(dir / ("glas/" + row.name + ".png"),
                  dir / ("folders/" + grade + "/" + row.name + ".png"));
    patients += grade + "/" + row.name + ".png," + row.patient + "\n";
  }
  write_file_atomically(dir / "folders/patients.csv", patients);
  for (int fold = 0; fold < 4; ++fold) {
    std::map<std::string, std::map<std::string, int>> chosen;  // layout -> stem -> side
    for (const char* layout : {"glas", "folders"}) {
      DataSelection s;
      s.folder = dir / layout;
      s.folds = 4;
      s.fold = fold;
      std::vector<SlideImage> train, validation;
      const LabelScheme labels = select_images(s, &train, &validation);
      EXPECT_EQ(labels.classes, (std::vector<std::string>{"benign", "malignant"}));
      for (const auto* side : {&train, &validation})
        for (const SlideImage& im : *side)
          chosen[layout][fs::path(im.name).filename().string()] =
              (side == &validation) * 10 + im.label;
    }
    EXPECT_EQ(chosen["glas"], chosen["folders"]) << "fold " << fold;
    EXPECT_EQ(chosen["glas"].size(), 16u);
  }
}

// A class folder holds more images than a run takes crops (Kather's
// NCT-CRC-HE-100K: ~10,000 per class): the crops come from a seeded random
// subset, not the first files, whose sorted names may share a slide.
TEST(ImageFolders, FewerCropsThanImagesSampleTheClassAtRandom) {
  TempDir dir;
  write_small_glas(dir / "glas", 40, 1);
  const GlasFolder folder = open_glas_folder(dir / "glas", "train");
  std::set<std::set<int>> subsets;
  for (uint64_t seed : {1, 2, 3}) {
    CropOptions crops;
    crops.crop_width = crops.crop_height = 32;
    crops.crops_per_class = 5;
    crops.seed = seed;
    const ExampleSet set = build_examples(folder.images, crops, 16, 16, 1);
    std::set<int> used;
    int per_class[2] = {0, 0};
    for (const Example& e : set.examples) used.insert(e.image_index), per_class[e.label]++;
    EXPECT_EQ(used.size(), 10u);  // five distinct images of each class
    EXPECT_EQ(per_class[0], 5);
    EXPECT_EQ(per_class[1], 5);
    subsets.insert(used);
    const ExampleSet again = build_examples(folder.images, crops, 16, 16, 1);
    EXPECT_EQ(again.pixels, set.pixels);  // seeded
  }
  EXPECT_EQ(subsets.size(), 3u);  // each seed its own subset
  // As many crops as images or more: every image, as before.
  CropOptions all;
  all.crop_width = all.crop_height = 32;
  all.crops_per_class = 45;
  std::set<int> used;
  for (const Example& e : build_examples(folder.images, all, 16, 16, 1).examples)
    used.insert(e.image_index);
  EXPECT_EQ(used.size(), 40u);
}

class ImageFoldersCli : public Cli {};

// Train with a validation split folder, evaluate it, predict one of its
// images: the model records the folders' classes and malignant view.
TEST_F(ImageFoldersCli, TrainEvalPredictOnClassFolders) {
  const GlasFolder glas = open_glas_folder(data(), "train");
  std::map<std::string, int> count;
  for (const SlideImage& im : glas.images) {
    // Kather-like classes: benign images split between two benign tissues.
    const std::string cls = im.label ? "TUM" : (count["b"]++ % 2 ? "STR" : "NORM");
    const std::string split = count[cls]++ % 4 == 3 ? "val" : "train";
    fs::create_directories(out("k/" + split + "/" + cls));
    fs::copy_file(im.path, out("k/" + split + "/" + cls + "/" + im.name + ".png"));
  }
  const std::string flags =
      " --size 32 --crop 96 --batch 20 --crops-per-class 60 --threads 1 --no-progress --epochs 2";
  const CommandResult t =
      run("train --data " + out("k") + " --val-split val -o " + out("m") + flags);
  ASSERT_EQ(t.status, 0) << t.output;
  EXPECT_NE(t.output.find("classes: NORM, STR, TUM; malignant: TUM (--malignant-classes chooses)"),
            std::string::npos)
      << t.output;
  EXPECT_NE(t.output.find("no patients.csv"), std::string::npos) << t.output;

  const CommandResult e = run("eval -m " + out("m/model.safetensors") + " --data " + out("k") +
                              " -o " + out("eval.json"));
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("evaluating the model's validation split 'val'"), std::string::npos);
  // Held-out images only, named by their path under the folder.
  const std::string images = read_file(out("eval.images.csv"));
  EXPECT_NE(images.find("\nval/TUM/"), std::string::npos) << images;
  EXPECT_NE(images.find("\nval/STR/"), std::string::npos) << images;
  EXPECT_EQ(images.find("train/"), std::string::npos) << images;

  std::string val_image;
  for (const auto& entry : fs::directory_iterator(out("k/val/TUM"))) val_image = entry.path();
  const CommandResult p = run("predict -m " + out("m/model.safetensors") + " " + val_image);
  ASSERT_EQ(p.status, 0) << p.output;
  ASSERT_NE(p.output.find("image,p_malignant,prediction,refer,class,p_NORM,p_STR,p_TUM\n"),
            std::string::npos)
      << p.output;
  // P(malignant) is the malignant class's probability: TUM's column.
  const std::string row = p.output.substr(p.output.find(val_image));
  std::vector<std::string> fields;
  for (size_t at = 0, next; at <= row.find('\n'); at = next + 1)
    fields.push_back(row.substr(at, (next = std::min(row.find(',', at), row.find('\n', at))) - at));
  ASSERT_EQ(fields.size(), 8u) << row;
  EXPECT_EQ(fields[1], fields[7]) << row;

  // A folder stands for every image in it or below, one row each, in order.
  const CommandResult folder = run("predict -m " + out("m/model.safetensors") + " " + out("k/val"));
  ASSERT_EQ(folder.status, 0) << folder.output;
  const std::vector<std::string> val_images = images_under(out("k/val"));
  size_t rows = 0, last = 0;
  for (const std::string& image : val_images) {
    const size_t at = folder.output.find("\n" + image + ",");
    ASSERT_NE(at, std::string::npos) << image << "\n" << folder.output;
    EXPECT_GT(at, last) << image;  // sorted
    last = at, ++rows;
  }
  EXPECT_GT(rows, 3u);
  fs::create_directories(out("nothing"));
  const CommandResult none = run("predict -m " + out("m/model.safetensors") + " " + out("nothing"));
  EXPECT_NE(none.status, 0);
  EXPECT_NE(none.output.find("nothing: no images"), std::string::npos) << none.output;

  // The model remembers its malignant classes: eval with another choice at
  // training would be another model, so a run cannot resume with one.
  const CommandResult resumed = run("train --data " + out("k") + " --val-split val -o " + out("m") +
                                    flags + " --resume --malignant-classes STR,TUM");
  EXPECT_NE(resumed.status, 0);
  EXPECT_NE(resumed.output.find("--malignant-classes"), std::string::npos) << resumed.output;
}

}  // namespace
}  // namespace histocnn
