#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <future>
#include <optional>
#include <set>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/slide_cohort.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/threads.h"
#include "data/slide.h"
#include "slide/slide_mil.h"
#include "slide/slide_outputs.h"
#include "slide/slide_run.h"
#include "study/gnuplot.h"
#include "train/ensemble.h"
#include "train/evaluate.h"
#include "train/member_prediction.h"

namespace histocnn::cli {
namespace {

// Ctrl-C: the batch in progress is finished and written, then the run stops
// (a second Ctrl-C kills at once).
std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) {
  interrupted = true;
  std::signal(SIGINT, SIG_DFL);
}

// slides.csv's row, less the cohort's columns (Cohort::csv_row_tail).
std::string slides_csv_row(const std::string& slide, const std::string& folder,
                           const nlohmann::json& s, const std::string& status) {
  auto number = [&](const char* key, const char* format) { return summary_cell(s, key, format); };
  return csv_field(slide) + "," + status + "," + number("tiles_scored", "%.0f") + "," +
         number("tissue_mm2", "%.3f") + "," + number("malignant_area_fraction", "%.4f") + "," +
         number("p_mean", "%.4f") + "," + number("p_max", "%.4f") + "," +
         number("p_top_mean", "%.4f") + "," + number("focus_median", "%.1f") + "," +
         number("out_of_focus_fraction", "%.4f") + "," + csv_field(folder);
}

// Every input exists, no two slides share an output folder, nothing is
// written over a model or a slide.
void check_inputs(const SlideOptions& o, const std::vector<std::string>& slides,
                  const std::string& mil_path) {
  require_distinct_series(slides);  // before names: one series twice has one name
  std::set<std::string> folders;
  std::vector<NamedInput> inputs;
  for (const auto& m : o.model_paths) inputs.push_back({m, "the model"});
  if (!mil_path.empty()) inputs.push_back({mil_path, "the slide model (--mil)"});
  for (const auto& s : slides) {
    require_slide_file(s);
    require(folders.insert(slide_output_folder(o, s)).second,
            s + ": another slide has the same name; its results would go to the same folder " +
                slide_output_folder(o, s));
    inputs.push_back({s, "a slide"});
  }
  for (const auto& f : folders) refuse_overwriting_inputs("--output", f, inputs);
  refuse_overwriting_inputs("--output", o.output, inputs);
}

struct SlideArgs {
  std::vector<std::string> models, files;
  std::string mil_path;  // --mil
  std::string device = "cpu";
  int threads = 0;
  SlideOptions o;
  CohortArgs cohort;
};

void add_input_options(CLI::App* cmd, SlideArgs* a) {
  cmd->add_option("files", a->files,
                  "MODEL SLIDE... (or SLIDE... with -m): .svs, .ndpi, .mrxs, .scn, tiled TIFF, "
                  "a DICOM series (its folder or a file of it), or a plain image; a folder: "
                  "every slide in it or below it (GDC and IDC download trees as they are)")
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
  cmd->add_option("--min-focus", o->min_focus,
                  "tiles less sharp than this (variance of the Laplacian of their luminance as "
                  "the network sees them; summary.json's focus_median shows a slide's) are kept "
                  "in tiles.csv but left out of the slide's statistics, maps and evaluations")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_flag("!--no-pen-filter", o->pen_filter,
                "count marker-pen strokes as tissue (default: left out)");
  cmd->add_option("--thumbnail", o->thumbnail_side, "long side of the mask and heatmap, pixels")
      ->capture_default_str()
      ->check(CLI::Range(64, 16384));
}

void add_evidence_options(CLI::App* cmd, SlideArgs* a) {
  SlideOptions* o = &a->o;
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
  cmd->add_flag("--features", o->features,
                "features.safetensors: every tile's features (what the last dense layer reads), "
                "coordinates and P, for slide-level models (attention MIL)");
  cmd->add_option("--mil", a->mil_path,
                  "a slide-level model (histocnn mil's mil.safetensors) applied to each slide: "
                  "p_mil in summary.json and slides.csv, attention.csv and attention.png "
                  "(implies --features)");
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
         "pyramidal TIFFs (generic, OME-TIFF, Aperio): auto decodes their tiles directly where a "
         "tile "
         "starts on a whole pixel of its level (the same pixels, faster), else OpenSlide; "
         "openslide: OpenSlide for every read (DICOM series have their own reader either "
         "way: OpenSlide 3.4 does not read them)")
      ->default_str("auto")
      ->check(CLI::IsMember({"auto", "openslide"}));
}

// ", slide model P(malignant) 0.973" when --mil gave the slide a P.
std::string slide_model_p(const nlohmann::json& summary) {
  if (!summary.contains("p_mil") || !summary["p_mil"].is_number()) return "";
  char text[64];
  std::snprintf(text, sizeof text, ", slide model P(malignant) %.3f",
                summary["p_mil"].get<double>());
  return text;
}

// One slide's line: where its results are, or how far an interrupted one got.
void report_slide(const std::string& slide, const std::string& folder,
                  const nlohmann::json& summary, const std::string& status, bool maps_drawn) {
  const std::string map = maps_drawn ? ".png" : "-overlay.png";  // the overlays are not drawn
  const std::string grades = summary.contains("class_area_fraction") ? "grades" + map + ", " : "";
  const std::string explained =
      !summary.contains("explanations")
          ? ""
          : (maps_drawn ? ", explain/*.gradcam.png" : ", explain/*.gradcam.overlay.png");
  const std::string attention =
      slide_model_p(summary).empty() ? "" : ", attention" + map;  // no tiles: no map
  if (status == "done")
    std::printf(
        "%s: %zu tiles scored%s%s -> %s/ (heatmap%s, %stiles.csv, tiles.geojson, "
        "summary.json%s%s%s)\n",
        slide.c_str(), summary.value("tiles_scored", size_t(0)),
        against_annotations(summary).c_str(), slide_model_p(summary).c_str(), folder.c_str(),
        map.c_str(), grades.c_str(), explained.c_str(),
        summary.contains("features") ? ", features.safetensors" : "", attention.c_str());
  if (status == "interrupted")
    std::fprintf(stderr,
                 "interrupted: %zu of %zu tiles of %s scored and kept; the same command "
                 "continues\n",
                 summary.value("tiles_scored", size_t(0)),
                 summary.value("tiles_on_tissue", size_t(0)), slide.c_str());
  // A cohort's log (stdout to a file is block-buffered) shows each slide as
  // it finishes, and in order with the next slide's error on stderr.
  std::fflush(stdout);
}

// --mil's model, read before any slide is scored; with it the slides' tile
// features are written and the cohort compares its P with the fixed scores.
std::optional<SlideMil> load_slide_model(SlideArgs& a) {
  require(!a.mil_path.empty() || a.cohort.evaluation.score != "mil",
          "--slide-score mil: needs a slide model (--mil MODEL)");
  if (a.mil_path.empty()) return std::nullopt;
  a.o.features = true;
  a.cohort.evaluation.scores = {"mil", "max", "top-mean", "mean", "area"};
  return SlideMil::load(a.mil_path);
}

// The tile models' features are what the slide model reads.
void check_slide_model(const SlideMil& mil, const PredictionSteps& steps, SlideOptions& o) {
  const std::string warning = mil.check_features(summed_feature_width(steps.members), o.tta);
  if (!warning.empty()) std::fprintf(stderr, "warning: %s\n", warning.c_str());
  o.mil = &mil;
}

// The slides prepared one ahead of the slide being scored: opening, the
// thumbnail and the tissue mask are mostly one core's work (a third of a
// slide's time on the 2-core VM), which the scoring leaves idle between
// batches (reads) and on a GPU throughout.
class PreparedAhead {
 public:
  PreparedAhead(const std::vector<std::string>& slides, const ModelFile& model,
                const SlideOptions& options)
      : slides_(slides), model_(model), options_(options) {}
  // Slide i's preparation (its error rethrown), slide i + 1's started.
  // Requires: i counts up from 0.
  PreparedSlide take(size_t i) {
    std::future<PreparedSlide> current = i == next_index_ ? std::move(next_) : start(i);
    if (i + 1 < slides_.size()) next_ = start(i + 1), next_index_ = i + 1;
    return current.get();
  }

 private:
  std::future<PreparedSlide> start(size_t i) {
    return std::async(std::launch::async,
                      [this, i] { return prepare_slide(slides_[i], model_, options_); });
  }
  const std::vector<std::string>& slides_;
  const ModelFile& model_;
  const SlideOptions options_;  // a copy: the caller's may change between slides
  std::future<PreparedSlide> next_;
  size_t next_index_ = SIZE_MAX;
};

// One slide's end: "done", "interrupted" or "failed" (with its message).
struct SlideOutcome {
  std::string status;
  nlohmann::json summary = nlohmann::json::object();
  std::string error;
};

SlideOutcome draw_one(UndrawnSlide& slide) {
  try {
    nlohmann::json summary = slide.draw();
    return {slide.interrupted() ? "interrupted" : "done", std::move(summary), ""};
  } catch (const Error& e) {
    return {"failed", nlohmann::json::object(), e.what()};
  }
}

// A slide scored, its maps still to draw; or the outcome of one that failed
// or was interrupted.
struct Scored {
  std::optional<UndrawnSlide> undrawn;
  SlideOutcome ended;
};

Scored score_one(const std::string& slide, PreparedAhead& prepared, size_t index,
                 const SlideOptions& options, const std::vector<ModelFile>& models,
                 const PredictionSteps& steps) {
  try {
    UndrawnSlide scored = score_slide_tiles(slide, prepared.take(index), models, steps.members,
                                            options, &interrupted);
    if (scored.interrupted()) return {std::nullopt, draw_one(scored)};
    return {std::move(scored), {}};
  } catch (const Error& e) {
    return {std::nullopt, {"failed", nlohmann::json::object(), e.what()}};
  }
}

// slides.csv (several slides, or a cohort: rewritten after each), each
// slide's line, and what the cohort pools; in the slides' order.
class SlideRecords {
 public:
  SlideRecords(const SlideOptions& o, Cohort& cohort, size_t slides, bool mil)
      : o_(o), cohort_(cohort), table_needed_(slides > 1 || cohort.active()), mil_(mil) {
    table_ =
        "slide,status,tiles,tissue_mm2,malignant_area_fraction,p_mean,p_max,"
        "p_top_mean,focus_median,out_of_focus_fraction,folder" +
        cohort.csv_header_tail() + (mil ? ",p_mil" : "") + "\n";
    report_.maps_drawn = o.maps_drawn;
  }
  void add(const std::string& slide, const SlideOutcome& r) {
    if (r.status == "failed") std::fprintf(stderr, "histocnn slide: %s\n", r.error.c_str());
    failures_ += r.status == "failed";
    const std::string folder = slide_output_folder(o_, slide);
    table_ += slides_csv_row(slide, folder, r.summary, r.status) +
              cohort_.csv_row_tail(slide, r.summary) +
              (mil_ ? "," + summary_cell(r.summary, "p_mil", "%.4f") : "") + "\n";
    if (table_needed_) write_file_atomically(o_.output + "/slides.csv", table_);
    report_slide(slide, folder, r.summary, r.status, o_.maps_drawn);
    if (r.status == "interrupted") return;
    cohort_.add(slide, r.status == "done", r.summary);
    report_.slides.push_back({slide, std::filesystem::path(folder).filename().string(), r.status,
                              r.summary, cohort_.label_value(slide)});
  }
  // The cohort's evaluation and report.html; the exit status.
  int finish() {
    cohort_.finish(o_.output, &report_);
    if (table_needed_) {
      write_cohort_report(report_, o_.output);
      std::printf("review: %s/report.html (every slide's heatmap, the most malignant first)\n",
                  o_.output.c_str());
    }
    return failures_ ? 1 : 0;
  }

 private:
  const SlideOptions& o_;
  Cohort& cohort_;
  const bool table_needed_, mil_;
  std::string table_;
  int failures_ = 0;
  CohortReport report_;
};

// Scores every slide in turn, drawing each one's maps while the next is
// scored: a failed slide is reported and the next one scored; Ctrl-C stops
// after the batch in progress.
int run_slides(SlideArgs& a, const CLI::App& cmd) {
  std::vector<std::string> slides = a.files;
  if (a.models.empty()) {
    require(slides.size() >= 2, "slide: give MODEL SLIDE... (or -m MODEL SLIDE...)");
    a.models.push_back(slides.front());
    slides.erase(slides.begin());
  }
  const SlideInputs inputs = expand_slide_folders(slides, "slide");
  slides = inputs.slides;
  SlideOptions& o = a.o;
  o.model_paths = a.models;
  check_inputs(o, slides, a.mil_path);
  const std::optional<SlideMil> mil = load_slide_model(a);
  Cohort cohort(a.cohort, slides, o.output);  // labels and annotations checked before any work
  bound_cores(a.threads);
  const std::vector<ModelFile> models = load_ensemble(a.models);
  cohort.check_model(models.front());
  o.tta = resolve_tta(cmd, o.tta, models, /*calibrated=*/true);
  const PredictionSteps steps = compile_for_prediction(select_device(a.device), models, o.batch);
  if (mil) check_slide_model(*mil, steps, o);
  inputs.say_found();  // every input checked: an error comes alone
  // Without gnuplot (a GPU node's image often has none) the scores are still
  // the point: the maps' overlays and scripts are written instead.
  o.maps_drawn = figures_drawable(
      "slide",
      "each slide's maps are written as overlays without axes (heatmap-overlay.png) "
      "beside their scripts");
  const OutputFolder output(o.output);  // removed again if nothing is written there
  std::signal(SIGINT, on_interrupt);
  SlideRecords records(o, cohort, slides.size(), mil.has_value());
  PreparedAhead prepared(slides, models.front(), o);
  // Slide i - 1's maps are drawn on another thread while slide i is scored:
  // drawing needs no model and is one core's work (the overlay, gnuplot, the
  // GeoJSON). One drawing at a time, so the cohort's pooling (on_drawn)
  // never runs twice at once.
  std::future<SlideOutcome> drawing;
  for (size_t i = 0; i < slides.size(); ++i) {
    Scored scored =
        score_one(slides[i], prepared, i, cohort.options_for(o, slides[i]), models, steps);
    if (drawing.valid()) records.add(slides[i - 1], drawing.get());
    if (!scored.undrawn) {
      records.add(slides[i], scored.ended);
      if (scored.ended.status == "interrupted") return 130;
      continue;
    }
    drawing = std::async(std::launch::async,
                         [s = std::move(*scored.undrawn)]() mutable { return draw_one(s); });
  }
  if (drawing.valid()) records.add(slides.back(), drawing.get());
  return records.finish();
}

}  // namespace

Runner add_slide(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "slide", "whole-slide images: tissue, tiles at the model's scale, P(malignant) heatmap");
  auto a = std::make_shared<SlideArgs>();
  add_input_options(cmd, a.get());
  add_scale_options(cmd, &a->o);
  add_evidence_options(cmd, a.get());
  add_speed_options(cmd, a.get());
  add_cohort_options(cmd, &a->cohort);
  return [a, cmd] { return run_slides(*a, *cmd); };
}

}  // namespace histocnn::cli
