// `histocnn tiles`: a training dataset cut from whole slides
// (slide/tile_export.h), labelled by region annotations or benign slide
// labels (the flags `slide` takes, cli/slide_cohort.h).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "cli/commands.h"
#include "cli/slide_cohort.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "data/slide.h"
#include "slide/tile_export.h"

namespace histocnn::cli {
namespace {

struct TilesArgs {
  std::vector<std::string> files;
  std::string output;
  bool force = false;
  TileExportOptions tiles;
  SlideOptions reading;
  CohortArgs truth;
};

void add_tile_options(CLI::App* cmd, TilesArgs* a) {
  cmd->option_defaults()->group("Tiles");
  cmd->add_option("--tile-mpp", a->tiles.mpp,
                  "microns per pixel of the tiles (GlaS's 20x: 0.62005; train with --image-mpp "
                  "the same)")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 50.0));
  cmd->add_option("--tile-size", a->tiles.size, "the tiles' side, pixels")
      ->capture_default_str()
      ->check(CLI::Range(16, 4096));
  cmd->add_option("--purity", a->tiles.purity,
                  "a tile is malignant with at least this share in malignant regions, benign "
                  "with at most 1 - this; border tiles between are left out")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 1.0));
  cmd->add_option("--max-per-class", a->tiles.max_per_class,
                  "tiles of each class per slide, drawn at random (0: all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefix", a->tiles.prefix,
                  "tile names start with this (train's --split selects by it)")
      ->capture_default_str();
  cmd->add_option("--format", a->tiles.format, "png, bmp or jpg")
      ->capture_default_str()
      ->check(CLI::IsMember({"png", "bmp", "jpg"}));
  cmd->add_option("--seed", a->tiles.seed, "seed of the draw")->capture_default_str();
  cmd->add_option("--mpp", a->reading.mpp, "the slides' microns per pixel (default: as recorded)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-tissue", a->reading.min_tissue, "tiles with less tissue are left out")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--tissue-threshold", a->reading.tissue_threshold,
                  "saturation above which a thumbnail pixel is tissue (default: Otsu's)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_flag("!--no-pen-filter", a->reading.pen_filter,
                "count marker-pen strokes as tissue (default: left out)");
}

// Every slide a regular file, no two with the same tile names, the output
// overwriting none of the inputs.
void check_inputs(const TilesArgs& a, const std::vector<std::string>& slides) {
  require_distinct_series(slides);  // before names: one series twice has one name
  std::set<std::string> stems;
  std::vector<NamedInput> inputs;
  for (const auto& s : slides) {
    require_slide_file(s);
    require(stems.insert(tile_name_stem(s)).second, s + ": another slide has the same name (" +
                                                        tile_name_stem(s) +
                                                        "); their tiles would have the same names");
    inputs.push_back({s, "a slide"});
  }
  if (!a.truth.labels_path.empty()) inputs.push_back({a.truth.labels_path, "the slide labels"});
  for (const char* written : {"Grade.csv", "tiles.json"})
    refuse_overwriting_inputs("--output", (std::filesystem::path(a.output) / written).string(),
                              inputs);
  refuse_overwriting_inputs("--output", a.output, inputs);
  require(a.force || !is_dataset_folder(a.output),
          "--output " + a.output +
              ": already holds a dataset (Grade.csv); choose a new folder, or --force to "
              "replace its Grade.csv");
  require(!a.tiles.prefix.empty() &&
              std::all_of(a.tiles.prefix.begin(), a.tiles.prefix.end(), tile_name_char),
          "--prefix " + a.tiles.prefix +
              ": letters, digits, '.', '-' and '_' only (it begins file names and Grade.csv "
              "rows)");
  require(
      !a.truth.labels_path.empty() || a.truth.tcga_labels || !a.truth.annotations_folder.empty(),
      "tiles: give --annotations DIR and/or --slide-labels FILE (or --tcga-labels): a tile "
      "needs a known class");
}

// Grade.csv holds the patient as a bare field.
std::string checked_patient(const std::string& patient, const std::string& slide) {
  require(patient.find_first_of(",\"\r\n") == std::string::npos,
          "--slide-labels: the patient \"" + patient + "\" of " + slide +
              " holds a comma, quote or line break, which Grade.csv cannot hold");
  return patient;
}

nlohmann::json manifest(const TilesArgs& a, const std::vector<ExportedSlide>& done,
                        const std::vector<std::string>& skipped, const std::string& train) {
  nlohmann::json slides = nlohmann::json::array();
  for (const ExportedSlide& e : done) slides.push_back(e.to_json());
  const TileExportOptions& t = a.tiles;
  return {{"tile_mpp", t.mpp},
          {"tile_size", t.size},
          {"tile_um", t.mpp * t.size},
          {"purity", t.purity},
          {"max_per_class", t.max_per_class},
          {"min_tissue", a.reading.min_tissue},
          {"pen_filter", a.reading.pen_filter},
          {"seed", t.seed},
          {"annotations", a.truth.annotations_folder},
          {"annotation_classes", a.truth.annotation_classes},
          {"slide_labels", a.truth.tcga_labels ? "TCGA barcodes" : a.truth.labels_path},
          {"slides", slides},
          {"skipped", skipped},
          {"train", train}};
}

// The slides whose tiles have a known class, each with its truth; the others
// are named on stderr.
std::vector<std::pair<std::string, SlideTruth>> known_slides(const Cohort& cohort,
                                                             const std::vector<std::string>& slides,
                                                             std::vector<std::string>* skipped) {
  std::vector<std::pair<std::string, SlideTruth>> known;
  for (const auto& slide : slides) {
    SlideTruth truth = cohort.truth_of(slide);
    truth.patient =
        checked_patient(truth.patient.empty() ? tile_name_stem(slide) : truth.patient, slide);
    if (truth.annotations || truth.benign)
      known.push_back({slide, truth});
    else
      skipped->push_back(slide);
  }
  if (!skipped->empty())
    std::fprintf(stderr,
                 "histocnn tiles: %zu slide%s (%s%s) with neither annotations nor a benign "
                 "label: no tile of %s has a known class\n",
                 skipped->size(), skipped->size() > 1 ? "s" : "", skipped->front().c_str(),
                 skipped->size() > 1 ? ", ..." : "", skipped->size() > 1 ? "them" : "it");
  require(!known.empty(), "tiles: no slide has annotations or a benign label");
  return known;
}

// The command that trains on the dataset (a crop no larger than the tiles).
std::string train_command(const TilesArgs& a) {
  char mpp[32];
  std::snprintf(mpp, sizeof mpp, "%g", a.tiles.mpp);
  return "histocnn train --data " + a.output + " --split " + a.tiles.prefix + " --image-mpp " +
         mpp + (a.tiles.size < 256 ? " --crop " + std::to_string(a.tiles.size) : "");
}

void report_slide(const ExportedSlide& e) {
  char ink[64] = "";
  if (e.pen_ink_mm2 > 0)
    std::snprintf(ink, sizeof ink, "; %.2f mm² of pen ink left out", e.pen_ink_mm2);
  std::printf(
      "%s: %d tissue tiles (%d malignant, %d benign, %d border) -> %d malignant, %d "
      "benign written%s\n",
      e.slide.c_str(), e.tissue_tiles, e.malignant, e.benign, e.border, e.written_malignant,
      e.written_benign, ink);
}

int run_tiles(TilesArgs& a) {
  const SlideInputs inputs = expand_slide_folders(a.files, "tiles");
  const std::vector<std::string>& slides = inputs.slides;
  check_inputs(a, slides);
  Cohort cohort(a.truth, slides, a.output);  // labels and annotations read before any work
  inputs.say_found();
  std::vector<std::string> skipped;
  const auto known = known_slides(cohort, slides, &skipped);
  const OutputFolder output(a.output);  // removed again if nothing is written there
  std::filesystem::create_directories(a.output);
  std::vector<ExportedSlide> done;
  std::vector<GradeRow> rows;
  int failures = 0, malignant = 0;
  for (const auto& [slide, truth] : known) {
    try {
      done.push_back(export_slide_tiles(slide, truth, a.tiles, a.reading, a.output));
    } catch (const Error& e) {
      std::fprintf(stderr, "histocnn tiles: %s\n", e.what());
      ++failures;
      continue;
    }
    report_slide(done.back());
    rows.insert(rows.end(), done.back().rows.begin(), done.back().rows.end());
    malignant += done.back().written_malignant;
  }
  require(!rows.empty(),
          "tiles: no tile written (every slide failed or has no tissue tile of a known class)");
  const std::string train = train_command(a);
  write_file_atomically((std::filesystem::path(a.output) / "tiles.json").string(),
                        manifest(a, done, skipped, train).dump(2) + "\n");
  // Grade.csv last: a folder with a Grade.csv is complete.
  write_file_atomically((std::filesystem::path(a.output) / "Grade.csv").string(),
                        format_grade_csv(rows));
  const int benign = int(rows.size()) - malignant;
  std::printf(
      "wrote %zu tiles (%d malignant, %d benign) of %zu slide%s to %s; train on them:\n  %s\n",
      rows.size(), malignant, benign, done.size(), done.size() > 1 ? "s" : "", a.output.c_str(),
      train.c_str());
  if (!malignant || !benign)
    std::fprintf(stderr, "histocnn tiles: every tile written is %s: training needs both\n",
                 malignant ? "malignant" : "benign");
  return failures ? 1 : 0;
}

}  // namespace

Runner add_tiles(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "tiles",
      "a training dataset (Grade.csv + tiles) cut from whole slides, labelled by region "
      "annotations or benign slide labels");
  auto a = std::make_shared<TilesArgs>();
  a->truth.command = "tiles";
  cmd->add_option("files", a->files,
                  "slides (.svs, .ndpi, .mrxs, .scn, tiled TIFF, a DICOM series); a folder: "
                  "every slide in it or below it (GDC and IDC download trees as they are)")
      ->required();
  cmd->add_option("--output,-o", a->output, "the dataset folder")->required();
  cmd->add_flag("--force", a->force, "replace the Grade.csv of a folder that holds a dataset");
  add_label_options(cmd, &a->truth,
                    "CSV naming slides' labels (slide,label[,patient]): a benign slide without "
                    "annotations gives benign tiles; the patient goes into Grade.csv");
  add_annotation_options(cmd, &a->truth, "the tiles' classes");
  add_tile_options(cmd, a.get());
  return [a] { return run_tiles(*a); };
}

}  // namespace histocnn::cli
