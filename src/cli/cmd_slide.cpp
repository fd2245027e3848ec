#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/threads.h"
#include "data/annotations.h"
#include "data/slide.h"
#include "data/slide_labels.h"
#include "slide/slide_evaluation.h"
#include "slide/slide_run.h"
#include "train/ensemble.h"
#include "train/evaluate.h"

namespace histocnn::cli {
namespace {

// Ctrl-C: the batch in progress is finished and written, then the run stops
// (a second Ctrl-C kills at once).
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) {
  interrupted = true;
  std::signal(SIGINT, SIG_DFL);
}

// The tiles' AUC against the slide's annotations ("" without them, or
// without both kinds of tile).
std::string tile_auc(const nlohmann::json& summary) {
  if (!summary.contains("annotations") || !summary["annotations"]["auc"].is_number()) return "";
  char text[16];
  std::snprintf(text, sizeof text, "%.4f", summary["annotations"]["auc"].get<double>());
  return text;
}

std::string slides_csv_row(const std::string& slide, const std::string& folder,
                           const nlohmann::json& s, const std::string& status,
                           const SlideLabel* label, bool annotated) {
  auto number = [&](const char* key, const char* format) -> std::string {
    // A failed slide, one without tissue, or a NaN (null in a reused summary.json).
    if (!s.contains(key) || !s[key].is_number()) return "";
    char text[48];
    std::snprintf(text, sizeof text, format, s[key].get<double>());
    return text;
  };
  return csv_field(slide) + "," + status + "," + number("tiles_scored", "%.0f") + "," +
         number("tissue_mm2", "%.3f") + "," + number("malignant_area_fraction", "%.4f") + "," +
         number("p_mean", "%.4f") + "," + number("p_max", "%.4f") + "," +
         number("p_top_mean", "%.4f") + "," + csv_field(folder) +
         (label ? std::string(label->label ? ",malignant" : ",benign") : "") +
         (annotated ? "," + tile_auc(s) : "");
}

// Every input exists, no two slides share an output folder, nothing is
// written over a model or a slide.
void check_inputs(const SlideOptions& o, const std::vector<std::string>& slides) {
  std::set<std::string> folders;
  std::vector<NamedInput> inputs;
  for (const auto& m : o.model_paths) inputs.push_back({m, "the model"});
  for (const auto& s : slides) {
    std::error_code ec;
    require(std::filesystem::is_regular_file(s, ec),
            s + (std::filesystem::exists(s, ec) ? ": not a regular file" : ": no such slide file"));
    require(folders.insert(slide_output_folder(o, s)).second,
            s + ": another slide has the same name; its results would go to the same folder " +
                slide_output_folder(o, s));
    inputs.push_back({s, "a slide"});
  }
  for (const auto& f : folders) refuse_overwriting_inputs("--output", f, inputs);
  refuse_overwriting_inputs("--output", o.output, inputs);
}

// A folder among the slides stands for the slides in it (slides_in_folder).
std::vector<std::string> with_folders_expanded(const std::vector<std::string>& inputs) {
  std::vector<std::string> slides;
  for (const auto& input : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec)) {
      slides.push_back(input);
      continue;
    }
    const auto inside = slides_in_folder(input);
    slides.insert(slides.end(), inside.begin(), inside.end());
  }
  return slides;
}

struct SlideArgs {
  std::vector<std::string> models, files;
  std::string device = "cpu";
  int threads = 0;
  SlideOptions o;
  std::string labels_path;  // --slide-labels: evaluate the cohort
  SlideEvaluationOptions evaluation;
  std::string annotations_folder;  // --annotations: check tiles against regions
  std::vector<std::string> annotation_classes = default_annotation_classes();
};

void add_input_options(CLI::App* cmd, SlideArgs* a) {
  cmd->add_option("files", a->files,
                  "MODEL SLIDE... (or SLIDE... with -m): .svs, .ndpi, .mrxs, .scn, tiled TIFF, "
                  "or a plain image; a folder: every slide in it")
      ->required();
  cmd->option_defaults()->group("Inputs and outputs");
  cmd->add_option("--model,-m", a->models, "model or ensemble file (several -m average)")
      ->allow_extra_args(false);
  cmd->add_option("--output,-o", a->o.output, "results go to DIR/<slide name>/")->required();
  cmd->add_flag("--restart", a->o.restart, "score again instead of continuing a previous run");
  cmd->add_flag("!--no-progress", a->o.progress, "no progress line");
}

void add_scale_options(CLI::App* cmd, SlideOptions* o) {
  cmd->option_defaults()->group("Scale and tissue");
  cmd->add_option("--mpp", o->mpp, "the slides' microns per pixel (default: as recorded)")
      ->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--mpp-model", o->mpp_model,
                  "the model's microns per network pixel (default: as recorded)")
      ->check(CLI::Range(0.01, 1000.0));
  cmd->add_option("--tissue-threshold", o->tissue_threshold,
                  "saturation above which a pixel is tissue (default: Otsu's, at least 0.05)")
      ->check(CLI::Range(0.001, 1.0));
  cmd->add_option("--min-tissue", o->min_tissue, "tiles with less tissue are not scored")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--thumbnail", o->thumbnail_side, "long side of the mask and heatmap, pixels")
      ->capture_default_str()
      ->check(CLI::Range(64, 16384));
}

void add_evidence_options(CLI::App* cmd, SlideOptions* o) {
  cmd->option_defaults()->group("Scores and evidence");
  cmd->add_flag("--tta,!--no-tta", o->tta,
                "average every tile over its 8 flips/rotations (default: the model's recipe)");
  cmd->add_option("--top-k", o->top_k, "tiles listed in summary.json")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--explain", o->explain,
                  "Grad-CAM figures of this many most malignant tiles: "
                  "explain/tile-X-Y.gradcam.png (X, Y the tile's level-0 origin)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
}

void add_speed_options(CLI::App* cmd, SlideArgs* a) {
  cmd->option_defaults()->group("Device and speed");
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU cores for inference (0 = all)")
      ->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "tiles per device call")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--readers", a->o.readers, "threads reading and resizing tiles")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  SlideOptions* o = &a->o;
  cmd->add_option_function<std::string>(
         "--reader",
         [o](const std::string& v) {
           o->reader = v == "openslide" ? SlideReader::openslide : SlideReader::automatic;
         },
         "pyramidal TIFFs (generic, Aperio): auto decodes their tiles directly where a tile "
         "starts on a whole pixel of its level (the same pixels, faster), else OpenSlide; "
         "openslide: OpenSlide for every read")
      ->default_str("auto")
      ->check(CLI::IsMember({"auto", "openslide"}));
}

void add_cohort_options(CLI::App* cmd, SlideArgs* a) {
  cmd->option_defaults()->group("Cohort evaluation");
  auto* labels =
      cmd->add_option("--slide-labels", a->labels_path,
                      "CSV naming each slide's label (slide,label[,patient]; label benign or "
                      "malignant, 0/1, negative/positive, normal/tumor): slide-level AUC, "
                      "sensitivity and specificity with 95% bootstrap intervals into "
                      "slide-evaluation.json and slide-roc.png");
  cmd->add_option("--slide-score", a->evaluation.score,
                  "a slide's score: max (its most malignant tile's P), top-mean (the mean P of "
                  "its --top-k most malignant tiles), mean, or area (its tissue's share with P "
                  ">= 0.5)")
      ->capture_default_str()
      ->check(CLI::IsMember(slide_score_names()))
      ->needs(labels);
  cmd->add_option("--slide-threshold", a->evaluation.threshold,
                  "a slide is called malignant when its score is at least this")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->needs(labels);
  auto* annotations =
      cmd->add_option("--annotations", a->annotations_folder,
                      "folder of region annotations, DIR/<slide name>.geojson as QuPath exports "
                      "them: each slide's tiles scored against them (AUC, sensitivity, "
                      "specificity in summary.json); a slide without a file whose --slide-labels "
                      "label is benign has every tile benign");
  cmd->add_option("--annotation-classes", a->annotation_classes,
                  "annotation classes that mark malignant regions (any: every annotation)")
      ->delimiter(',')
      ->default_str("tumor,tumour,malignant,carcinoma,cancer")
      ->needs(annotations);
}

// Every slide's annotations, read before any slide is scored (a malformed
// file fails at once). Slides without a file are named on stderr; one whose
// label is benign needs none.
std::map<std::string, Annotations> read_slide_annotations(const SlideArgs& a,
                                                          const std::vector<std::string>& slides,
                                                          const SlideLabels* labels) {
  std::map<std::string, Annotations> found;
  if (a.annotations_folder.empty()) return found;
  std::error_code ec;
  require(std::filesystem::is_directory(a.annotations_folder, ec),
          "--annotations " + a.annotations_folder + ": not a folder");
  std::vector<std::string> missing;
  size_t regions = 0, ignored = 0;
  for (const auto& slide : slides) {
    const std::string stem = std::filesystem::path(slide).stem().string();
    std::string file;
    for (const char* ext : {".geojson", ".json"})
      if (file.empty() && std::filesystem::is_regular_file(
                              std::filesystem::path(a.annotations_folder) / (stem + ext), ec))
        file = (std::filesystem::path(a.annotations_folder) / (stem + ext)).string();
    const SlideLabel* label = labels ? labels->find(slide) : nullptr;
    if (file.empty()) {
      if (!label || label->label != 0) missing.push_back(stem);
      continue;
    }
    Annotations& n = found[slide] = read_annotations(file, a.annotation_classes);
    regions += n.malignant.size();
    ignored += size_t(n.ignored);
  }
  if (!missing.empty())
    std::fprintf(stderr, "histocnn slide: no %s/<name>.geojson for %zu slide%s (%s%s): their tiles "
                 "are not checked\n", a.annotations_folder.c_str(), missing.size(),
                 missing.size() > 1 ? "s" : "", missing.front().c_str(),
                 missing.size() > 1 ? ", ..." : "");
  if (!found.empty() && regions == 0 && ignored > 0)
    std::fprintf(stderr, "histocnn slide: none of the %zu annotations has a class that "
                 "--annotation-classes counts as malignant: every tile is checked as benign\n",
                 ignored);
  return found;
}

// slide-evaluation.json and slide-roc.png for the slides scored (or failed).
void evaluate_cohort(const SlideArgs& a, const std::vector<ScoredSlide>& cohort) {
  const SlideEvaluation evaluation = evaluate_slides(cohort, a.evaluation);
  write_slide_evaluation(evaluation, a.o.output);
  std::printf("%s -> %s/slide-evaluation.json, slide-roc.png\n", evaluation.headline().c_str(),
              a.o.output.c_str());
}

// ", tile AUC 0.93 against the annotations" (or the share of tiles called
// benign where the annotations mark none malignant); "" without annotations.
std::string against_annotations(const nlohmann::json& summary) {
  if (!summary.contains("annotations")) return "";
  const nlohmann::json& a = summary["annotations"];
  char text[96] = "";
  if (a["auc"].is_number())
    std::snprintf(text, sizeof text, ", tile AUC %.3f against the annotations",
                  a["auc"].get<double>());
  else if (a["specificity"].is_number())
    std::snprintf(text, sizeof text, ", %.0f%% of its tiles benign as annotated",
                  100 * a["specificity"].get<double>());
  return text;
}

// One slide's line: where its results are, or how far an interrupted one got.
void report_slide(const std::string& slide, const std::string& folder,
                  const nlohmann::json& summary, const std::string& status) {
  if (status == "done")
    std::printf(
        "%s: %zu tiles scored%s -> %s/ (heatmap.png, %stiles.csv, tiles.geojson, "
        "summary.json%s)\n",
        slide.c_str(), summary.value("tiles_scored", size_t(0)), against_annotations(summary).c_str(),
        folder.c_str(), summary.contains("class_area_fraction") ? "grades.png, " : "",
        summary.contains("explanations") ? ", explain/*.gradcam.png" : "");
  if (status == "interrupted")
    std::fprintf(stderr,
                 "interrupted: %zu of %zu tiles of %s scored and kept; the same command "
                 "continues\n",
                 summary.value("tiles_scored", size_t(0)),
                 summary.value("tiles_on_tissue", size_t(0)), slide.c_str());
}

// Scores every slide in turn: a failed slide is reported and the next one
// scored; Ctrl-C stops after the batch in progress. slides.csv (several
// slides) is rewritten after each.
int run_slides(SlideArgs& a, const CLI::App& cmd) {
  std::vector<std::string> slides = a.files;
  if (a.models.empty()) {
    require(slides.size() >= 2, "slide: give MODEL SLIDE... (or -m MODEL SLIDE...)");
    a.models.push_back(slides.front());
    slides.erase(slides.begin());
  }
  slides = with_folders_expanded(slides);
  SlideOptions& o = a.o;
  o.model_paths = a.models;
  check_inputs(o, slides);
  std::optional<SlideLabels> labels;
  if (!a.labels_path.empty()) {  // before any slide is scored: a missing row fails at once
    labels = SlideLabels::read(a.labels_path);
    labels->require_every(slides);
    for (const char* written : {"/slides.csv", "/slide-evaluation.json"})
      refuse_overwriting_inputs("--output", o.output + written,
                                {{a.labels_path, "the slide labels"}});
  }
  const std::map<std::string, Annotations> annotations =
      read_slide_annotations(a, slides, labels ? &*labels : nullptr);
  const bool annotated = !a.annotations_folder.empty();
  bound_cores(a.threads);
  const std::vector<ModelFile> models = load_ensemble(a.models);
  require(!labels || models.front().labels.has_binary_view(),
          "--slide-labels: the model's classes (" + models.front().labels.name +
              ") have no benign/malignant view to score slides by");
  o.tta = resolve_tta(cmd, o.tta, models, /*calibrated=*/true);
  const PredictionSteps steps = compile_for_prediction(select_device(a.device), models, o.batch);
  const OutputFolder output(o.output);  // removed again if nothing is written there
  std::signal(SIGINT, on_interrupt);
  std::string table =
      "slide,status,tiles,tissue_mm2,malignant_area_fraction,p_mean,p_max,p_top_mean,folder" +
      std::string(labels ? ",label" : "") + (annotated ? ",tile_auc\n" : "\n");
  std::vector<ScoredSlide> cohort;
  int failures = 0;
  for (const auto& slide : slides) {
    nlohmann::json summary = nlohmann::json::object();
    std::string status = "done";
    const SlideLabel* label = labels ? labels->find(slide) : nullptr;
    SlideOptions this_slide = o;
    const auto found = annotations.find(slide);
    this_slide.annotations = found == annotations.end() ? nullptr : &found->second;
    this_slide.benign_without_annotations =
        annotated && !this_slide.annotations && label && label->label == 0;
    try {
      summary = score_slide(slide, models, steps.members, this_slide, &interrupted);
      if (summary.value("interrupted", false)) status = "interrupted";
    } catch (const Error& e) {
      std::fprintf(stderr, "histocnn slide: %s\n", e.what());
      status = "failed";
      ++failures;
    }
    const std::string folder = slide_output_folder(o, slide);
    table += slides_csv_row(slide, folder, summary, status, label, annotated) + "\n";
    if (slides.size() > 1 || labels || annotated)
      write_file_atomically(o.output + "/slides.csv", table);
    report_slide(slide, folder, summary, status);
    if (status == "interrupted") return 130;
    if (label) cohort.push_back({slide, label->label, label->patient, status == "done", summary});
  }
  if (labels) evaluate_cohort(a, cohort);
  return failures ? 1 : 0;
}

}  // namespace

Runner add_slide(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "slide", "whole-slide images: tissue, tiles at the model's scale, P(malignant) heatmap");
  auto a = std::make_shared<SlideArgs>();
  add_input_options(cmd, a.get());
  add_scale_options(cmd, &a->o);
  add_evidence_options(cmd, &a->o);
  add_speed_options(cmd, a.get());
  add_cohort_options(cmd, a.get());
  return [a, cmd] { return run_slides(*a, *cmd); };
}

}  // namespace histocnn::cli
