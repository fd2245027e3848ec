// Training tiles from whole slides (slide/tile_export.h, `histocnn tiles`):
// the class of a tile by its share in malignant regions, the reproducible
// draw, the names, a synthetic slide's tiles against the generator's own
// truth, and the command end to end into a dataset `train` reads.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "data/grade_csv.h"
#include "data/image.h"
#include "data/synth_slide.h"
#include "slide/tile_export.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::run;

TEST(TileExport, ATileIsMalignantBenignOrABorderByItsShare) {
  EXPECT_EQ(tile_truth_class(0.95, 0.9), 1);
  EXPECT_EQ(tile_truth_class(0.9, 0.9), 1);
  EXPECT_EQ(tile_truth_class(0.5, 0.9), -1);
  EXPECT_EQ(tile_truth_class(0.1, 0.9), 0);
  EXPECT_EQ(tile_truth_class(0.0, 0.9), 0);
  EXPECT_EQ(tile_truth_class(63.0 / 64, 1.0), -1);  // purity 1: only whole tiles count
  EXPECT_EQ(tile_truth_class(1.0, 1.0), 1);
  EXPECT_EQ(tile_truth_class(1.0 / 64, 1.0), -1);
}

TEST(TileExport, TheDrawIsReproducibleUniformAndKeepsTheOrder) {
  const std::vector<size_t> ten = {3, 5, 8, 13, 21, 34, 55, 89, 144, 233};
  EXPECT_EQ(draw_in_order(ten, 0, 1), ten);
  EXPECT_EQ(draw_in_order(ten, 10, 1), ten);
  EXPECT_EQ(draw_in_order(ten, 3, 7), draw_in_order(ten, 3, 7));
  std::map<size_t, int> chosen;
  for (uint64_t seed = 0; seed < 3000; ++seed) {
    const auto drawn = draw_in_order(ten, 3, seed);
    ASSERT_EQ(drawn.size(), 3u);
    EXPECT_TRUE(std::is_sorted(drawn.begin(), drawn.end()));
    EXPECT_EQ(std::set<size_t>(drawn.begin(), drawn.end()).size(), 3u);
    for (size_t i : drawn) ++chosen[i];
  }
  for (size_t i : ten) EXPECT_NEAR(chosen[i] / 3000.0, 0.3, 0.04) << i;  // 900 +- 3.6 sd
  EXPECT_EQ(tile_name_stem("/data/a b,c\"d.tar.svs"), "a-b-c-d.tar");
}

// A 3000 x 2000 mixed slide (6 x 4 blocks of 512) and its annotations.
class TileExportSlide : public ::testing::Test {
 protected:
  void SetUp() override {
    o_.width = 3000;
    o_.height = 2000;
    o_.pieces = 2;
    o_.seed = 11;
    write_synthetic_slide(dir_ / "mix.tif", o_);
    write_synthetic_annotations(dir_ / "mix.xml", o_);
    std::filesystem::create_directories(dir_ / "out");
  }
  testing::TempDir dir_;
  SynthSlideOptions o_;
};

TEST_F(TileExportSlide, TilesTakeTheAnnotatedClassAndMatchTheGeneratorsTruth) {
  const Annotations a = read_annotations(dir_ / "mix.xml", default_annotation_classes());
  TileExportOptions t;
  t.size = 64;  // 64 px at 0.62 um: 64 level-0 pixels, 8 x 8 tiles per block
  t.max_per_class = 0;
  SlideOptions reading;
  const ExportedSlide e =
      export_slide_tiles(dir_ / "mix.tif", {&a, false, "P7"}, t, reading, dir_ / "out");
  EXPECT_EQ(e.tissue_tiles, e.malignant + e.benign + e.border);
  EXPECT_GT(e.malignant, 100);
  EXPECT_GT(e.benign, 100);
  EXPECT_EQ(e.written_malignant, e.malignant);
  ASSERT_EQ(e.rows.size(), size_t(e.malignant + e.benign));
  const SyntheticSlideLayout truth(o_);
  int agree = 0;
  for (const GradeRow& r : e.rows) {
    EXPECT_EQ(r.patient, "P7");
    // train_mix_<column>_<row>: the tile at column * 64, row * 64.
    int column = 0, row = 0;
    ASSERT_EQ(std::sscanf(r.name.c_str(), "train_mix_%d_%d", &column, &row), 2) << r.name;
    agree += (truth.label_at(column * 64 + 32, row * 64 + 32) == 2) == (r.label == 1);
    const Image image = load_image(dir_ / ("out/" + r.name + ".png"));
    EXPECT_EQ(image.width, 64);
    EXPECT_EQ(image.height, 64);
  }
  // The annotations are the generator's malignant blocks; a tile's centre
  // may fall on glass beside a malignant block's tissue edge.
  EXPECT_GE(agree, int(e.rows.size()) * 98 / 100) << agree << " of " << e.rows.size();
  // At most 5 of each class, the same 5 again; a benign slide's every tile benign.
  t.max_per_class = 5;
  const ExportedSlide five =
      export_slide_tiles(dir_ / "mix.tif", {&a, false, "P7"}, t, reading, dir_ / "out");
  EXPECT_EQ(five.written_malignant, 5);
  EXPECT_EQ(five.written_benign, 5);
  const ExportedSlide again =
      export_slide_tiles(dir_ / "mix.tif", {&a, false, "P7"}, t, reading, dir_ / "out");
  ASSERT_EQ(again.rows.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(again.rows[i].name, five.rows[i].name);
  const ExportedSlide benign =
      export_slide_tiles(dir_ / "mix.tif", {nullptr, true, "P8"}, t, reading, dir_ / "out");
  EXPECT_EQ(benign.malignant, 0);
  EXPECT_EQ(benign.border, 0);
  EXPECT_EQ(benign.benign, benign.tissue_tiles);
}

TEST_F(TileExportSlide, TheCommandWritesADatasetThatTrainReads) {
  SynthSlideOptions b = o_;
  b.tissue = SlideTissue::benign;
  b.seed = 12;
  std::filesystem::create_directories(dir_ / "slides");
  std::filesystem::create_directories(dir_ / "regions");
  std::filesystem::rename(dir_ / "mix.tif", dir_ / "slides/mix.tif");
  std::filesystem::rename(dir_ / "mix.xml", dir_ / "regions/mix.xml");
  write_synthetic_slide(dir_ / "slides/unknown.tif", b);
  b.pen_marks = true;  // circled: the ink is left out, and the manifest says how much
  write_synthetic_slide(dir_ / "slides/clear.tif", b);
  write_file_atomically(dir_ / "labels.csv",
                        "slide,label,patient\nmix,malignant,P1\nclear,benign,P2\n"
                        "unknown,malignant,P3\n");
  const std::string tiles = "tiles " + (dir_ / "slides") + " -o " + (dir_ / "data") +
                            " --annotations " + (dir_ / "regions") + " --slide-labels " +
                            (dir_ / "labels.csv") + " --tile-size 96 --tile-mpp 1.24 " +
                            "--max-per-class 15";
  const testing::CommandResult r = run(tiles);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(
                "histocnn tiles: no " + (dir_ / "regions") +
                "/<name>.geojson, .xml or .annotations for 1 slide (unknown) and no benign label"),
            std::string::npos)
      << r.output;
  const std::vector<GradeRow> rows = read_grade_csv(dir_ / "data/Grade.csv");
  int malignant = 0;
  std::set<std::string> patients;
  for (const GradeRow& row : rows) {
    malignant += row.label;
    patients.insert(row.patient);
    EXPECT_TRUE(std::filesystem::exists(dir_ / ("data/" + row.name + ".png"))) << row.name;
    EXPECT_EQ(row.name.rfind(row.label ? "train_mix_" : "train_", 0), 0u) << row.name;
  }
  EXPECT_EQ(malignant, 15);
  EXPECT_EQ(rows.size(), 45u);  // 15 + 15 from mix (20 and 28 of each), 15 from clear
  EXPECT_EQ(patients, (std::set<std::string>{"P1", "P2"}));
  const auto manifest = nlohmann::json::parse(read_file(dir_ / "data/tiles.json"));
  EXPECT_EQ(manifest["slides"].size(), 2u);
  EXPECT_EQ(manifest["skipped"].size(), 1u);
  EXPECT_DOUBLE_EQ(manifest["tile_um"].get<double>(), 96 * 1.24);
  EXPECT_EQ(manifest["pen_filter"], true);
  const size_t clear_line = r.output.find(dir_ / "slides/clear.tif: ");
  ASSERT_NE(clear_line, std::string::npos) << r.output;
  const std::string line =
      r.output.substr(clear_line, r.output.find('\n', clear_line) - clear_line);
  EXPECT_NE(line.find(" benign written; "), std::string::npos) << line;
  const std::string ink = " mm² of pen ink left out";
  EXPECT_EQ(line.substr(line.size() - ink.size()), ink) << line;
  EXPECT_EQ(r.output.find("pen ink"), r.output.rfind("pen ink")) << "only the circled slide";
  for (const auto& slide : manifest["slides"])
    EXPECT_EQ(slide["pen_ink_mm2"].get<double>() > 0, slide["slide"] == dir_ / "slides/clear.tif")
        << slide.dump();
  const std::string train = manifest["train"];
  EXPECT_EQ(train, "histocnn train --data " + (dir_ / "data") +
                       " --split train --image-mpp 1.24 --crop 96");
  EXPECT_NE(r.output.find(train), std::string::npos) << r.output;
  // The printed command trains (briefly) on the tiles, split by patient.
  const testing::CommandResult trained =
      run(train.substr(std::string("histocnn ").size()) +
          " --size 32 --batch 20 --epochs 1 --folds 2 --crops-benign 60 --crops-malignant 60 "
          "--threads 1 --no-progress -o " +
          (dir_ / "model"));
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_TRUE(std::filesystem::exists(dir_ / "model/model.safetensors"));
  // TCGA slides: a normal one's tiles are benign, its participant the
  // patient; a tumour slide without annotations has no tile of known class.
  std::filesystem::create_directories(dir_ / "tcga");
  std::filesystem::copy_file(dir_ / "slides/clear.tif", dir_ / "tcga/TCGA-AA-0002-11A-01-TS1.tif");
  std::filesystem::copy_file(dir_ / "slides/unknown.tif",
                             dir_ / "tcga/TCGA-AA-0003-01Z-00-DX1.tif");
  const testing::CommandResult tcga =
      run("tiles " + (dir_ / "tcga") + " -o " + (dir_ / "tcga-data") +
          " --tcga-labels --tile-size 96 --tile-mpp 1.24 --max-per-class 15");
  ASSERT_EQ(tcga.status, 0) << tcga.output;
  const std::vector<GradeRow> normal = read_grade_csv(dir_ / "tcga-data/Grade.csv");
  EXPECT_EQ(normal.size(), 15u);
  for (const GradeRow& row : normal) {
    EXPECT_EQ(row.label, 0) << row.name;
    EXPECT_EQ(row.patient, "TCGA-AA-0002") << row.name;
  }
  const auto tcga_manifest = nlohmann::json::parse(read_file(dir_ / "tcga-data/tiles.json"));
  EXPECT_EQ(tcga_manifest["slide_labels"], "TCGA barcodes");
  EXPECT_EQ(tcga_manifest["skipped"].size(), 1u);
  // A dataset is replaced only with --force; without any truth nothing runs.
  const testing::CommandResult again = run(tiles);
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.output.find("already holds a dataset (Grade.csv)"), std::string::npos)
      << again.output;
  const testing::CommandResult none = run("tiles " + (dir_ / "slides") + " -o " + (dir_ / "none"));
  EXPECT_NE(none.status, 0);
  EXPECT_EQ(none.output,
            "histocnn: tiles: give --annotations DIR and/or --slide-labels FILE (or "
            "--tcga-labels): a tile needs a known class\n");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "none"));
}

}  // namespace
}  // namespace histocnn
