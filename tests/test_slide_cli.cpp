// `histocnn slide` end to end on real pyramidal TIFF files written by libvips
// (Debian libvips-tools) from a mosaic of synthetic tissue whose benign and
// malignant blocks are known: the heatmap separates them, the physical scale
// holds on a slide scanned at twice the resolution, glass gives empty
// outputs, bad files one-line errors, and a stopped run continues.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "data/image.h"
#include "data/synth_slide.h"
#include "slide/tile_features.h"
#include "test_util.h"
#include "tiles_csv.h"
#include "train/checkpoint.h"
#include "train/metrics.h"

namespace histocnn {
namespace {

using testing::CommandResult;
using testing::read_tile_rows;
using testing::run;
using testing::run_raw;
using testing::TileRow;

class SlideCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (run_raw("vips --version").status != 0) return;  // each test skips
    dir_ = new testing::TempDir();
    auto must = [](const CommandResult& r) { ASSERT_EQ(r.status, 0) << r.output; };
    must(run("synth -o " + at("train") +
             " --images 24 --per-patient 2 --width 240 --height 180 "
             "--seed 4"));
    must(run("train --data " + at("train") +
             " --size 32 --crop 96 --batch 20 --crops-benign 200 "
             "--crops-malignant 200 --folds 4 --fold 1 --threads 1 --no-progress --seed 3 "
             "--epochs 4 -o " +
             at("model")));
    // Slide images: patients alternate benign (1, 2, 5, 6, ...) and malignant.
    must(run("synth -o " + at("tiles") +
             " --images 24 --per-patient 2 --width 240 --height 180 "
             "--seed 9"));
    std::string benign, malignant;
    for (int i : {1, 2, 5, 6, 9, 10}) benign += at("tiles/train_" + std::to_string(i) + ".png ");
    for (int i : {3, 4, 7, 8, 11, 12})
      malignant += at("tiles/train_" + std::to_string(i) + ".png ");
    // Benign 480x540 on the left, malignant on the right, on glass: the
    // tissue spans x 300..1260, y 200..740 of a 1560x940 slide at 0.62 um.
    const std::string v = "cd " + dir_->path() + " && vips ";
    must(run_raw(v + "arrayjoin '" + benign + "' b.v --across 2"));
    must(run_raw(v + "arrayjoin '" + malignant + "' m.v --across 2"));
    must(run_raw(v + "arrayjoin 'b.v m.v' bm.v --across 2"));
    must(run_raw(v + "embed bm.v slide.v 300 200 1560 940 --extend white"));
    const std::string pyramid =
        " --tile --pyramid --compression jpeg --Q 92 --tile-width 128 "
        "--tile-height 128";
    must(run_raw(v + "tiffsave slide.v slide.tif" + pyramid + " --xres 1612.9 --yres 1612.9"));
    // The same tissue scanned at twice the resolution (0.31 um per pixel).
    must(run_raw(v + "resize slide.v slide2.v 2 --kernel linear"));
    must(run_raw(v + "tiffsave slide2.v fine.tif" + pyramid + " --xres 3225.8 --yres 3225.8"));
    // Nine times the tissue (540 tiles), to be interrupted.
    must(run_raw(v + "replicate slide.v rep.v 3 3"));
    must(run_raw(v + "tiffsave rep.v many.tif" + pyramid + " --xres 1612.9 --yres 1612.9"));
    // Glass only.
    must(run_raw(v + "black k.v 1200 800 --bands 3 && vips linear k.v g.v 1 246 --uchar"));
    must(run_raw(v + "tiffsave g.v glass.tif" + pyramid + " --xres 1612.9 --yres 1612.9"));
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override {
    if (!dir_) GTEST_SKIP() << "libvips-tools (vips) is not installed: scripts/install-deps.sh";
  }
  static std::string at(const std::string& name) { return *dir_ / name; }
  static std::string model() { return at("model/model.safetensors"); }
  static testing::TempDir* dir_;
};
testing::TempDir* SlideCli::dir_ = nullptr;

// Share of tiles whose verdict matches their block (centre left of x = 780: benign).
double block_accuracy(const std::vector<TileRow>& rows, double scale) {
  int right = 0;
  for (const TileRow& r : rows) right += ((r.x + r.width / 2) / scale >= 780) == (r.p >= 0.5);
  return double(right) / double(rows.size());
}

TEST_F(SlideCli, HeatmapSeparatesTheBenignAndMalignantBlocks) {
  const CommandResult r = run("slide " + model() + " " + at("slide.tif") + " -o " + at("out") +
                              " --threads 1 --no-progress --explain 2");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string folder = at("out/slide");
  for (const char* file :
       {"tiles.csv", "heatmap.png", "tiles.geojson", "summary.json", "tissue.png"})
    EXPECT_TRUE(std::filesystem::exists(folder + "/" + file)) << file;
  const std::vector<TileRow> rows = read_tile_rows(folder + "/tiles.csv");
  ASSERT_GE(rows.size(), 40u);
  for (const TileRow& r : rows) {  // only tissue is scored
    EXPECT_GE(r.x + r.width / 2, 300);
    EXPECT_LE(r.x + r.width / 2, 1260);
    EXPECT_LE(r.y, 740);
  }
  EXPECT_GE(block_accuracy(rows, 1), 0.85);
  const auto summary = nlohmann::json::parse(read_file(folder + "/summary.json"));
  EXPECT_EQ(summary["tiles_scored"], rows.size());
  EXPECT_NEAR(summary["tissue_mm2"].get<double>(), 960 * 540 * 0.62 * 0.62 / 1e6, 0.02);
  EXPECT_NEAR(summary["malignant_area_fraction"].get<double>(), 0.5, 0.15);
  const auto geo = nlohmann::json::parse(read_file(folder + "/tiles.geojson"));
  EXPECT_EQ(geo["features"].size(), rows.size());
  EXPECT_EQ(load_image(folder + "/heatmap.png").width, 1000);
  // --explain 2: the two most malignant tiles' Grad-CAM figures, listed.
  ASSERT_EQ(summary["explanations"].size(), 2u) << summary.dump(1);
  for (const auto& name : summary["explanations"])
    EXPECT_GT(std::filesystem::file_size(folder + "/" + name.get<std::string>()), 1000u) << name;
}

TEST_F(SlideCli, PhysicalScaleHoldsOnASlideAtTwiceTheResolution) {
  ASSERT_EQ(run("slide " + model() + " " + at("slide.tif") + " -o " + at("coarse") +
                " --threads 1 --no-progress")
                .status,
            0);
  const CommandResult r = run("slide " + model() + " " + at("fine.tif") + " -o " + at("fine") +
                              " --threads 1 --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto coarse = nlohmann::json::parse(read_file(at("coarse/slide/summary.json")));
  const auto fine = nlohmann::json::parse(read_file(at("fine/fine/summary.json")));
  EXPECT_NEAR(fine["tile_level0_pixels"][0].get<double>(),
              2 * coarse["tile_level0_pixels"][0].get<double>(), 0.1);
  EXPECT_NEAR(fine["tile_um"][0].get<double>(), coarse["tile_um"][0].get<double>(), 0.1);
  const std::vector<TileRow> a = read_tile_rows(at("coarse/slide/tiles.csv"));
  const std::vector<TileRow> b = read_tile_rows(at("fine/fine/tiles.csv"));
  ASSERT_EQ(a.size(), b.size());  // the same tissue, tile for tile
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(b[i].x, 2 * a[i].x, 1.5);
    diff += std::fabs(a[i].p - b[i].p) / double(a.size());
  }
  EXPECT_LT(diff, 0.1);
  EXPECT_GE(block_accuracy(b, 2), 0.85);
}

TEST_F(SlideCli, GlassOnlyGivesAClearMessageAndEmptyOutputs) {
  const CommandResult r =
      run("slide " + model() + " " + at("glass.tif") + " -o " + at("glass") + " --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("no tissue found"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(at("glass/glass/tiles.csv")),
            "x,y,width,height,level,width_um,height_um,tissue,focus,p_malignant\n");
  const auto summary = nlohmann::json::parse(read_file(at("glass/glass/summary.json")));
  EXPECT_EQ(summary["tiles_scored"], 0);
  EXPECT_EQ(summary["tissue_mm2"], 0.0);
  EXPECT_TRUE(std::filesystem::exists(at("glass/glass/heatmap.png")));
  const auto geo = nlohmann::json::parse(read_file(at("glass/glass/tiles.geojson")));
  EXPECT_TRUE(geo["features"].empty());
}

TEST_F(SlideCli, BadFilesGetOneLineErrorsNamingThem) {
  const std::string bytes = read_file(at("slide.tif"));
  write_file_atomically(at("cut.tif"), bytes.substr(0, bytes.size() / 3));
  write_file_atomically(at("notes.svs"), "these are my notes, not a slide\n");
  // A 573-byte mutation of an .svs found by fuzzing: OpenSlide 3.4.1 opens
  // it (asking for 14 GB it never touches) while libtiff warns four times.
  const std::string damaged = std::string(HISTOCNN_SOURCE_DIR) + "/tests/data/damaged-aperio.svs";
  for (const std::string& file : {at("cut.tif"), at("notes.svs"), at("missing.svs"), damaged}) {
    const CommandResult r =
        run("slide " + model() + " " + file + " -o " + at("bad") + " --no-progress");
    EXPECT_NE(r.status, 0) << file;
    EXPECT_NE(r.output.find(file), std::string::npos) << r.output;
    EXPECT_LE(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  // A model that does not record its scale: the flag that gives it.
  ModelFile m = load_model_file(model());
  m.mpp_x = m.mpp_y = 0;
  save_model_file(at("unscaled.safetensors"), m);
  const CommandResult r = run("slide " + at("unscaled.safetensors") + " " + at("slide.tif") +
                              " -o " + at("unscaled") + " --no-progress");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--mpp-model"), std::string::npos) << r.output;
  EXPECT_EQ(run("slide " + at("unscaled.safetensors") + " " + at("slide.tif") + " -o " +
                at("unscaled") + " --no-progress --mpp-model 1.8601")
                .status,
            0);
}

TEST_F(SlideCli, AStoppedRunContinuesWhereItStoppedAndOnlyWithItsSettings) {
  const std::string args = "slide " + model() + " " + at("slide.tif") + " --no-progress -o ";
  ASSERT_EQ(run(args + at("whole")).status, 0);
  const std::string complete = read_file(at("whole/slide/tiles.csv"));
  ASSERT_EQ(run(args + at("stopped")).status, 0);
  // As a kill leaves it: the header, 10 rows and a torn eleventh.
  size_t cut = 0;
  for (int line = 0; line < 11; ++line) cut = complete.find('\n', cut) + 1;
  write_file_atomically(at("stopped/slide/tiles.csv"), complete.substr(0, cut + 7));
  std::filesystem::remove(at("stopped/slide/summary.json"));
  const CommandResult resumed = run(args + at("stopped"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(read_file(at("stopped/slide/tiles.csv")), complete);
  EXPECT_TRUE(std::filesystem::exists(at("stopped/slide/summary.json")));
  const CommandResult other = run(args + at("stopped") + " --min-tissue 0.3");
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("--restart"), std::string::npos) << other.output;
  EXPECT_EQ(run(args + at("stopped") + " --min-tissue 0.3 --restart").status, 0);
}

TEST_F(SlideCli, CtrlCKeepsTheScoredBatchesAndTheSameCommandFinishes) {
  const std::string args = " slide " + model() + " " + at("many.tif") +
                           " --no-progress --threads 1 --readers 1 --batch 1 -o ";
  ASSERT_EQ(run(args + at("many-whole")).status, 0);
  const std::string complete = read_file(at("many-whole/many/tiles.csv"));
  const std::string csv = at("many-stopped/many/tiles.csv");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string command = "exec " + std::string(HISTOCNN_BINARY) + args + at("many-stopped") +
                                " > " + at("stopped.log") + " 2>&1";
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Ctrl-C once some rows are written (or the run ended first: then it simply finished).
  for (int wait = 0; wait < 2000; ++wait) {
    std::error_code ec;
    if (std::filesystem::file_size(csv, ec) > 300 && !ec) break;
    usleep(1000);
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  const std::string log = read_file(at("stopped.log"));
  if (WEXITSTATUS(status) == 130) {
    EXPECT_NE(log.find("the same command continues"), std::string::npos) << log;
    EXPECT_LT(read_file(csv).size(), complete.size());
    EXPECT_FALSE(std::filesystem::exists(at("many-stopped/many/summary.json")));
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 0) << log;
  }
  const CommandResult again = run(args + at("many-stopped"));
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(read_file(csv), complete);
}

// Tiles by what the synthetic slide holds at their centres (0 glass, 1
// benign, 2 malignant): how many, and their mean P(malignant).
struct ScoresByTruth {
  int n[3] = {0, 0, 0};
  double mean_p[3] = {0, 0, 0};
};
ScoresByTruth scores_by_truth(const std::vector<TileRow>& rows, const SyntheticSlideLayout& truth) {
  ScoresByTruth s;
  for (const TileRow& t : rows) {
    const int label = truth.label_at(int64_t(t.x + t.width / 2), int64_t(t.y + t.width / 2));
    s.mean_p[label] += t.p;
    ++s.n[label];
  }
  for (int label = 0; label < 3; ++label) s.mean_p[label] /= std::max(1, s.n[label]);
  return s;
}

TEST_F(SlideCli, OurOwnSyntheticSlideIsScoredAgainstItsKnownBlocks) {
  SynthSlideOptions o;
  o.width = 6000;
  o.height = 4000;
  o.pieces = 2;
  o.seed = 5;
  const SyntheticSlideLayout truth(o);
  // The generic pyramid, the same slide in Aperio's .svs layout (4x levels,
  // RGB-coded JPEG), read directly, as an OME-TIFF (the pyramid in SubIFDs,
  // the scale in OME-XML, named without ".ome"), and as a DICOM series (a folder of
  // level files, given by its folder, its malignant blocks as ASAP XML
  // named after it): the same tissue found, the same separation. The
  // 4-epoch model learnt on 240x180 fields: it separates the slide's
  // malignant blocks from its benign ones clearly, not perfectly.
  struct Case {
    std::string path, flags, format, reader;
  };
  const std::vector<Case> cases{
      // dicom/ made by synth
      {at("own.tif"), "", "generic-tiff", "direct-tiff"},
      {at("own.svs"), "", "aperio", "direct-tiff"},
      {at("own.ome.tif"), "", "ome-tiff", "direct-tiff"},
      {at("dicom/own"), " --slide-format dicom --slide-annotations " + at("dicom/own.xml"), "dicom",
       "dicom"}};
  size_t generic_tiles = 0;
  for (const Case& c : cases) {
    const CommandResult synth =
        run("synth --slide " + c.path + " --slide-size 6000x4000 --pieces 2 --seed 5" + c.flags);
    ASSERT_EQ(synth.status, 0) << synth.output;
    const std::string out = c.path + ".out";
    // The DICOM series also exports its tiles' features.
    const std::string annotations =
        c.format == "dicom" ? " --features --annotations " + at("dicom") : "";
    const CommandResult r = run("slide " + model() + " " + c.path + " -o " + out +
                                " --threads 1 --no-progress" + annotations);
    ASSERT_EQ(r.status, 0) << r.output;
    const auto summary = nlohmann::json::parse(read_file(out + "/own/summary.json"));
    EXPECT_EQ(summary["format"], c.format) << summary.dump();
    EXPECT_EQ(summary["reader"], c.reader) << summary.dump();
    EXPECT_EQ(summary["reader_note"], "") << summary.dump();
    if (c.format == "ome-tiff") {  // the generic pyramid's levels, its scale
      EXPECT_EQ(summary["levels"], 5) << summary.dump();
      EXPECT_NEAR(summary["mpp"][0].get<double>(), 0.62005, 1e-9) << summary.dump();
    }
    const std::vector<TileRow> rows = read_tile_rows(out + "/own/tiles.csv");
    ASSERT_GE(rows.size(), 200u) << c.path;
    if (!generic_tiles) generic_tiles = rows.size();
    EXPECT_NEAR(double(rows.size()), double(generic_tiles), 0.05 * double(generic_tiles)) << c.path;
    const ScoresByTruth s = scores_by_truth(rows, truth);
    EXPECT_LE(s.n[0], int(rows.size() / 20)) << c.path;  // tiles lie on tissue
    ASSERT_GT(s.n[1], 50) << c.path;
    ASSERT_GT(s.n[2], 50) << c.path;
    EXPECT_GT(s.mean_p[2] - s.mean_p[1], 0.3) << c.path;
    if (c.format == "dicom") {
      EXPECT_EQ(summary["annotations"]["format"], "ASAP XML") << summary.dump();
      EXPECT_EQ(summary["annotations"]["tiles"], int(rows.size())) << summary.dump();
      EXPECT_GT(summary["annotations"]["auc"].get<double>(), 0.6) << summary.dump();
      EXPECT_NE(r.output.find(", features.safetensors)"), std::string::npos) << r.output;
      EXPECT_EQ(read_tile_features(out + "/own/features.safetensors").rows, int64_t(rows.size()));
    }
  }
}

TEST_F(SlideCli, SeveralSlidesAddOneRowEachToSlidesCsvAndEnsemblesTheirSpread) {
  const CommandResult r = run("slide -m " + model() + " -m " + model() + " " + at("slide.tif") +
                              " " + at("glass.tif") + " -o " + at("many") + " --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string tiles = read_file(at("many/slide/tiles.csv"));
  EXPECT_EQ(tiles.substr(0, tiles.find('\n')),
            "x,y,width,height,level,width_um,height_um,tissue,focus,p_malignant,member_sd");
  const std::string table = read_file(at("many/slides.csv"));
  EXPECT_EQ(std::count(table.begin(), table.end(), '\n'), 3) << table;
  EXPECT_NE(table.find("slide.tif,done,"), std::string::npos) << table;
  EXPECT_NE(table.find("glass.tif,done,0,"), std::string::npos) << table;
}

TEST_F(SlideCli, ACohortWithLabelsGetsSlideLevelMetricsAndAMissingLabelFailsFirst) {
  const std::vector<std::pair<std::string, std::string>> cohort = {
      {"b1", "benign"}, {"b2", "benign"}, {"m1", "malignant"}, {"m2", "malignant"}};
  // A folder of slides stands for the slides in it, and only those.
  const std::string slides = " " + at("cohort-slides");
  std::filesystem::create_directories(at("cohort-slides"));
  for (size_t i = 0; i < cohort.size(); ++i) {
    const auto& [name, tissue] = cohort[i];
    ASSERT_EQ(run("synth --slide " + at("cohort-slides/" + name + ".tif") +
                  " --slide-size 3000x2000 --pieces 2 --seed " + std::to_string(i % 2 + 1) +
                  " --slide-tissue " + tissue)
                  .status,
              0);
  }
  write_file_atomically(at("cohort-slides/notes.txt"), "scanned 2026-12-02\n");
  std::filesystem::copy_file(at("tiles/train_1.png"), at("cohort-slides/photo.png"));
  std::filesystem::create_directories(at("no-slides"));
  std::filesystem::copy_file(at("tiles/train_1.png"), at("no-slides/photo.png"));
  const CommandResult none = run("slide " + model() + " " + at("no-slides") + " -o " + at("n"));
  EXPECT_NE(none.status, 0);
  EXPECT_EQ(
      none.output,
      "histocnn: " + at("no-slides") +
          ": no slide in this folder or below it that OpenSlide or the DICOM reader recognises "
          "(name plain images one by one)\n");
  // Labels as a user writes them: extra columns, synonyms, names with and
  // without the extension; P1 has a benign and a malignant slide.
  write_file_atomically(at("labels.csv"),
                        "slide,site,label,patient\nb1,colon,benign,P1\nb2.tif,colon,0,P2\n"
                        "m1,colon,Malignant,P1\nm2,rectum,tumor,P3\n");
  const CommandResult missing = run("slide " + model() + slides + " " + at("glass.tif") + " -o " +
                                    at("cohort-bad") + " --slide-labels " + at("labels.csv"));
  EXPECT_NE(missing.status, 0);
  EXPECT_EQ(missing.output, "histocnn: --slide-labels " + at("labels.csv") +
                                ": no row for slide glass.tif (a row names a slide as given, by "
                                "its file name, without the extension, or by the barcode of a "
                                "DICOM slide or a GDC file)\n");
  EXPECT_FALSE(std::filesystem::exists(at("cohort-bad"))) << "nothing scored, nothing written";
  EXPECT_NE(run("slide " + model() + slides + " -o " + at("x") + " --slide-score max").status, 0);
  std::filesystem::create_directories(at("kept"));
  std::filesystem::copy_file(at("labels.csv"), at("kept/slides.csv"));
  const CommandResult over = run("slide " + model() + slides + " -o " + at("kept") +
                                 " --slide-labels " + at("kept/slides.csv"));
  EXPECT_NE(over.status, 0);
  EXPECT_NE(over.output.find("would overwrite the slide labels"), std::string::npos) << over.output;
  EXPECT_EQ(read_file(at("kept/slides.csv")), read_file(at("labels.csv")));

  const CommandResult r =
      run("slide " + model() + slides + " -o " + at("cohort") + " --slide-labels " +
          at("labels.csv") + " --slide-score mean --threads 1 --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("slide level (mean, 4 slides, 2 malignant): AUC 1.000 (95% CI"),
            std::string::npos)
      << r.output;
  const auto e = nlohmann::json::parse(read_file(at("cohort/slide-evaluation.json")));
  EXPECT_EQ(e["slides"], 4);
  EXPECT_EQ(e["malignant"], 2);
  EXPECT_EQ(e["by_score"].size(), 4u);
  EXPECT_EQ(e["bootstrap"]["unit"], "patient");
  EXPECT_EQ(e["bootstrap"]["units"], 3);
  EXPECT_EQ(e["left_out"].size(), 0u);
  EXPECT_EQ(e["per_slide"][0]["slide"], at("cohort-slides/b1.tif"));
  // The model separates whole benign slides from malignant ones by mean P.
  for (const auto& row : e["per_slide"])
    EXPECT_EQ(row["called"], row["label"]) << e["per_slide"].dump();
  const std::string table = read_file(at("cohort/slides.csv"));
  EXPECT_EQ(table.substr(0, table.find('\n')),
            "slide,status,tiles,tissue_mm2,malignant_area_fraction,p_mean,p_max,p_top_mean,"
            "focus_median,out_of_focus_fraction,folder,label");
  EXPECT_NE(table.find("m2,malignant\n"), std::string::npos) << table;
  EXPECT_NE(table.find("b2,benign\n"), std::string::npos) << table;
  EXPECT_GT(read_file(at("cohort/slide-roc.png")).size(), 1000u);

  // The same slides downloaded from the GDC (<file UUID>/<barcode>.<UUID>.svs):
  // --tcga-labels reads the same labels and patients from their names.
  const std::vector<std::string> barcodes = {"TCGA-AA-0001-11A-01-TS1", "TCGA-AA-0002-11A-01-TS1",
                                             "TCGA-AA-0001-01Z-00-DX1", "TCGA-AA-0003-01Z-00-DX1"};
  for (size_t i = 0; i < cohort.size(); ++i) {
    const std::string folder = at("gdc/" + std::to_string(i) + "c2e");
    std::filesystem::create_directories(folder);
    std::filesystem::copy_file(at("cohort-slides/" + cohort[i].first + ".tif"),
                               folder + "/" + barcodes[i] + ".77a1.tif");
  }
  const CommandResult tcga = run("slide " + model() + " " + at("gdc") + " -o " + at("tcga") +
                                 " --tcga-labels --slide-score mean --threads 1 --no-progress");
  ASSERT_EQ(tcga.status, 0) << tcga.output;
  EXPECT_NE(tcga.output.find("histocnn slide: 4 slides in " + at("gdc") + " and below\n"),
            std::string::npos)
      << tcga.output;
  EXPECT_NE(tcga.output.find("histocnn slide: --tcga-labels: every benign slide is a frozen "
                             "section (TS/BS/MS) and every malignant one a diagnostic FFPE slide"),
            std::string::npos)
      << tcga.output;
  const auto t = nlohmann::json::parse(read_file(at("tcga/slide-evaluation.json")));
  for (const char* key : {"slides", "malignant", "auc", "auc_95ci", "sensitivity_95ci"})
    EXPECT_EQ(t[key], e[key]) << key;
  EXPECT_EQ(t["bootstrap"], e["bootstrap"]);

  // Another score: no tile is scored and no slide output drawn again; other
  // output options (--top-k) redraw them.
  const auto drawn = std::filesystem::last_write_time(at("cohort/b1/heatmap.png"));
  const std::string evaluate = "slide " + model() + slides + " -o " + at("cohort") +
                               " --slide-labels " + at("labels.csv") + " --threads 1 --no-progress";
  const CommandResult again = run(evaluate + " --slide-score max");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("slide level (max, 4 slides, 2 malignant): AUC "), std::string::npos)
      << again.output;
  EXPECT_EQ(std::filesystem::last_write_time(at("cohort/b1/heatmap.png")), drawn);
  EXPECT_EQ(nlohmann::json::parse(read_file(at("cohort/slide-evaluation.json")))["score"], "max");
  ASSERT_EQ(run(evaluate + " --top-k 1").status, 0);
  EXPECT_NE(std::filesystem::last_write_time(at("cohort/b1/heatmap.png")), drawn);
  const auto b1 = nlohmann::json::parse(read_file(at("cohort/b1/summary.json")));
  EXPECT_EQ(b1["top_k"], 1);
  EXPECT_EQ(b1["p_top_mean"], b1["p_max"]);
}

TEST_F(SlideCli, TilesAreScoredAgainstRegionAnnotations) {
  // A mixed slide with its malignant blocks exported as ASAP XML (as CAMELYON
  // ships them), a second slide without a file (and without a label), and a
  // malignant one with QuPath GeoJSON.
  SynthSlideOptions o;
  o.width = 4000;
  o.height = 3000;
  o.pieces = 2;
  o.seed = 3;
  std::filesystem::create_directories(at("ann/slides"));
  std::filesystem::create_directories(at("ann/regions"));
  ASSERT_EQ(
      run("synth --slide " + at("ann/slides/mix.tif") + " --slide-size 4000x3000 --pieces 2 " +
          "--seed 3 --slide-annotations " + at("ann/regions/mix.xml"))
          .status,
      0);
  ASSERT_EQ(run("synth --slide " + at("ann/slides/other.tif") + " --slide-size 1500x1000 " +
                "--pieces 1 --seed 4 --slide-tissue benign")
                .status,
            0);
  ASSERT_EQ(run("synth --slide " + at("ann/slides/tumour.tif") + " --slide-size 1500x1000 " +
                "--pieces 1 --seed 5 --slide-tissue malignant --slide-annotations " +
                at("ann/regions/tumour.geojson"))
                .status,
            0);
  const CommandResult r = run("slide " + model() + " " + at("ann/slides") + " -o " + at("ann/out") +
                              " --annotations " + at("ann/regions") + " --threads 1 --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("histocnn slide: no " + at("ann/regions") +
                          "/<name>.geojson, .xml or .annotations for 1 slide (other) and no benign "
                          "label: their tiles have "
                          "no truth"),
            std::string::npos)
      << r.output;
  const auto a = nlohmann::json::parse(read_file(at("ann/out/mix/summary.json")))["annotations"];
  EXPECT_EQ(a["format"], "ASAP XML");
  EXPECT_GT(a["regions"].get<int>(), 10) << "one polygon per malignant block";
  // The same AUC from tiles.csv with each tile's truth at its centre, from
  // the generator's own blocks: the annotations carry the truth faithfully.
  const std::vector<TileRow> rows = read_tile_rows(at("ann/out/mix/tiles.csv"));
  std::vector<Prediction> by_centre;
  for (const TileRow& t : rows)
    by_centre.push_back(
        {float(t.p), SyntheticSlideLayout(o).label_at(int64_t(t.x + t.width / 2),
                                                      int64_t(t.y + t.width / 2)) == 2});
  EXPECT_EQ(a["tiles"], int(rows.size()));
  EXPECT_NEAR(a["auc"].get<double>(), compute_metrics(by_centre).auc, 0.02) << a.dump();
  EXPECT_GT(a["auc"].get<double>(), 0.6) << a.dump();
  EXPECT_GT(a["malignant_tiles"].get<int>(), int(rows.size()) / 4) << a.dump();
  const std::string table = read_file(at("ann/out/slides.csv"));
  EXPECT_NE(table.find(",tile_auc\n"), std::string::npos) << table;
  EXPECT_EQ(nlohmann::json::parse(read_file(at("ann/out/other/summary.json"))).count("annotations"),
            0u);
  EXPECT_NE(r.output.find("mix.tif: " + std::to_string(rows.size()) + " tiles scored, tile AUC "),
            std::string::npos)
      << r.output;
  // Annotations that make every tile malignant: the share called so.
  const auto all = nlohmann::json::parse(read_file(at("ann/out/tumour/summary.json")));
  EXPECT_EQ(all["annotations"]["malignant_tiles"], all["tiles_scored"]);
  EXPECT_TRUE(all["annotations"]["auc"].is_null());
  EXPECT_NE(r.output.find("% of its tiles malignant as annotated -> "), std::string::npos)
      << r.output;
  EXPECT_EQ(all["annotations"]["format"], "QuPath GeoJSON");
  // The cohort's tiles pooled: the two annotated slides (the third has no
  // file and no label), each slide a bootstrap unit.
  const auto pooled = nlohmann::json::parse(read_file(at("ann/out/tile-evaluation.json")));
  EXPECT_EQ(pooled["slides"], 2);
  EXPECT_EQ(pooled["tiles"], a["tiles"].get<int>() + all["annotations"]["tiles"].get<int>());
  EXPECT_EQ(pooled["malignant_tiles"],
            a["malignant_tiles"].get<int>() + all["annotations"]["malignant_tiles"].get<int>());
  EXPECT_EQ(pooled["bootstrap"]["unit"], "slide");
  EXPECT_TRUE(std::filesystem::exists(at("ann/out/tile-roc.png")));
  // Lesions: the mixed slide's malignant blocks and the malignant slide's.
  const auto lesions = nlohmann::json::parse(read_file(at("ann/out/lesion-evaluation.json")));
  EXPECT_GE(lesions["lesions"].get<int>(), 2) << lesions.dump();
  EXPECT_GT(lesions["froc_score"].get<double>(), 0.5) << lesions.dump();
  EXPECT_TRUE(std::filesystem::exists(at("ann/out/froc.png")));
  const std::string review = read_file(at("ann/out/report.md"));
  EXPECT_NE(review.find("![tile-roc.png](tile-roc.png)"), std::string::npos) << review;
  EXPECT_NE(review.find("](#slide-3) |  | "), std::string::npos) << review;  // 3 slides, no labels
  EXPECT_NE(r.output.find("review: " + at("ann/out") + "/report.html"), std::string::npos);
  EXPECT_GT(pooled["auc"].get<double>(), 0.6) << pooled.dump();
  EXPECT_NE(r.output.find("tile level (" + std::to_string(pooled["tiles"].get<int>()) +
                          " tiles of 2 slides, "),
            std::string::npos)
      << r.output;
  // Two files for one slide: which is the truth is not guessed.
  write_file_atomically(at("ann/regions/mix.geojson"), read_file(at("ann/regions/tumour.geojson")));
  const CommandResult two = run("slide " + model() + " " + at("ann/slides") + " -o " +
                                at("ann/two") + " --annotations " + at("ann/regions"));
  EXPECT_NE(two.status, 0);
  EXPECT_EQ(two.output, "histocnn: --annotations " + at("ann/regions") +
                            ": 2 annotation files for " + at("ann/slides/mix.tif") + " (" +
                            at("ann/regions/mix.geojson") + ", " + at("ann/regions/mix.xml") +
                            "): keep one\n");
  EXPECT_FALSE(std::filesystem::exists(at("ann/two")));
  std::filesystem::remove(at("ann/regions/mix.geojson"));
  // A malformed file fails before any slide is scored.
  write_file_atomically(at("ann/regions/other.geojson"), "{\"type\": \"Feature\"}");
  const CommandResult bad = run("slide " + model() + " " + at("ann/slides") + " -o " +
                                at("ann/bad") + " --annotations " + at("ann/regions"));
  EXPECT_NE(bad.status, 0);
  EXPECT_EQ(bad.output, "histocnn: " + at("ann/regions/other.geojson") +
                            ": not GeoJSON annotations (expected a FeatureCollection, as "
                            "QuPath's File > Export objects as GeoJSON writes)\n");
  EXPECT_FALSE(std::filesystem::exists(at("ann/bad")));
}

TEST_F(SlideCli, ModelsRecordTheirScaleAndPredictReadsTiff) {
  const ModelFile m = load_model_file(model());
  EXPECT_NEAR(m.mpp_x, 0.62005 * 96 / 32, 1e-9);
  ASSERT_EQ(run_raw("vips copy " + at("tiles/train_3.png") + " " + at("strip.tif")).status, 0);
  const CommandResult png = run("predict -m " + model() + " " + at("tiles/train_3.png"));
  const CommandResult tif = run("predict -m " + model() + " " + at("strip.tif"));
  ASSERT_EQ(tif.status, 0) << tif.output;
  auto verdict = [](const std::string& out) {  // the row after the header, less the name
    const std::string row = out.substr(out.find('\n') + 1);
    return row.substr(row.find(','));
  };
  EXPECT_EQ(verdict(png.output), verdict(tif.output));
}

}  // namespace
}  // namespace histocnn
