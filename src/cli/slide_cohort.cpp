#include "cli/slide_cohort.h"

#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "data/slide.h"

namespace histocnn::cli {
namespace {

// The tiles' AUC against the slide's annotations ("" without them, or
// without both kinds of tile).
std::string tile_auc(const nlohmann::json& summary) {
  if (!summary.contains("annotations") || !summary["annotations"]["auc"].is_number()) return "";
  char text[16];
  std::snprintf(text, sizeof text, "%.4f", summary["annotations"]["auc"].get<double>());
  return text;
}

// DIR/<slide name>.geojson, .json, .xml or .annotations (HALO's); "" when none exists. Two of
// them for one slide are refused: which one is the truth is not ours to guess.
std::string annotation_file(const std::string& folder, const std::string& slide) {
  const std::string stem = slide_name(slide);
  std::error_code ec;
  std::vector<std::string> found;
  for (const char* ext : {".geojson", ".json", ".xml", ".annotations"}) {
    const std::string file = (std::filesystem::path(folder) / (stem + ext)).string();
    if (std::filesystem::is_regular_file(file, ec)) found.push_back(file);
  }
  if (found.empty()) return "";
  if (found.size() > 1)
    fail("--annotations " + folder + ": " + std::to_string(found.size()) +
         " annotation files for " + slide + " (" + found.front() + ", " + found.back() +
         "): keep one");
  return found.front();
}

std::string joined(const std::vector<std::string>& words) {
  std::string text;
  for (const std::string& w : words) text += (text.empty() ? "" : ",") + w;
  return text;
}

}  // namespace

SlideInputs expand_slide_folders(const std::vector<std::string>& inputs,
                                 const std::string& command) {
  SlideInputs in;
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (!std::filesystem::is_directory(input, ec)) {
      in.slides.push_back(input);
      continue;
    }
    const std::vector<std::string> found = slides_in_folder(input);
    in.found += "histocnn " + command + ": " + std::to_string(found.size()) +
                (found.size() == 1 ? " slide" : " slides") + " in " + input + " and below\n";
    in.slides.insert(in.slides.end(), found.begin(), found.end());
  }
  return in;
}

void SlideInputs::say_found() const {
  std::fputs(found.c_str(), stdout);
  std::fflush(stdout);  // seen now, when the output is a log, not after hours of work
}

void add_label_options(CLI::App* cmd, CohortArgs* a, const std::string& labels_help) {
  auto* labels = cmd->add_option("--slide-labels", a->labels_path, labels_help);
  cmd->add_flag("--tcga-labels", a->tcga_labels,
                "each slide's label and patient from the TCGA barcode its name begins with "
                "(GDC file names, IDC DICOM barcodes): sample types 01-09 malignant, 10-19 "
                "benign (11: solid tissue normal); the participant (TCGA-AA-3512) is the "
                "patient")
      ->excludes(labels);
}

void add_cohort_options(CLI::App* cmd, CohortArgs* a) {
  cmd->option_defaults()->group("Cohort evaluation");
  add_label_options(cmd, a,
                    "CSV naming each slide's label (slide,label[,patient]; label benign or "
                    "malignant, 0/1, negative/positive, normal/tumor): slide-level AUC, "
                    "sensitivity and specificity with 95% bootstrap intervals into "
                    "slide-evaluation.json and slide-roc.png");
  // Either label flag will do; CLI11's needs() takes one.
  auto needs_labels = [a](const char* flag) {
    return [a, flag](const std::string&) { a->needs_labels = flag; };
  };
  cmd->add_option("--slide-score", a->evaluation.score,
                  "a slide's score: max (its most malignant tile's P), top-mean (the mean P of "
                  "its --top-k most malignant tiles), mean, area (its tissue's share with P "
                  ">= 0.5), or mil (the --mil slide model's P)")
      ->capture_default_str()
      ->check(CLI::IsMember({"max", "top-mean", "mean", "area", "mil"}))
      ->each(needs_labels("--slide-score"));
  cmd->add_option("--slide-threshold", a->evaluation.threshold,
                  "a slide is called malignant when its score is at least this")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0))
      ->each(needs_labels("--slide-threshold"));
  add_annotation_options(cmd, a,
                         "each slide's tiles scored against them (AUC, sensitivity, specificity "
                         "in summary.json, pooled in tile-evaluation.json)");
}

void add_annotation_options(CLI::App* cmd, CohortArgs* a, const std::string& what_for) {
  auto* annotations =
      cmd->add_option("--annotations", a->annotations_folder,
                      "folder of region annotations, DIR/<slide name>.geojson (QuPath), .xml "
                      "(ASAP, as CAMELYON ships them, or Aperio ImageScope) or .annotations "
                      "(HALO): " +
                          what_for +
                          "; a slide without a file whose --slide-labels label is benign has "
                          "every tile benign");
  cmd->add_option("--annotation-classes", a->annotation_classes,
                  "annotation classes that mark malignant regions (any: every annotation); "
                  "the classes exclusion and _2 always mark regions cut out of them")
      ->delimiter(',')
      ->default_str(joined(default_annotation_classes()))
      ->needs(annotations);
}

Cohort::Cohort(const CohortArgs& args, const std::vector<std::string>& slides,
               const std::string& output)
    : args_(args) {
  require(args_.needs_labels.empty() || args_.tcga_labels || !args_.labels_path.empty(),
          args_.needs_labels +
              ": the slides' labels are needed (--slide-labels FILE or "
              "--tcga-labels)");
  if (args_.tcga_labels) labels_ = SlideLabels::from_tcga_barcodes(slides);
  if (!args_.labels_path.empty()) {
    labels_ = SlideLabels::read(args_.labels_path);
    labels_->require_every(slides);
    for (const char* written : {"/slides.csv", "/slide-evaluation.json", "/tile-evaluation.json"})
      refuse_overwriting_inputs("--output", output + written,
                                {{args_.labels_path, "the slide labels"}});
  }
  if (labels_ && !labels_->caveat().empty())
    std::fprintf(stderr, "histocnn %s: %s: %s\n", args_.command.c_str(), labels_->path().c_str(),
                 labels_->caveat().c_str());
  if (annotated()) read_annotations_of(slides);
}

// Slides without a file are named on stderr; one whose label is benign
// needs none.
void Cohort::read_annotations_of(const std::vector<std::string>& slides) {
  std::error_code ec;
  require(std::filesystem::is_directory(args_.annotations_folder, ec),
          "--annotations " + args_.annotations_folder + ": not a folder");
  std::vector<std::string> missing;
  size_t regions = 0, ignored = 0, markers = 0;
  for (const auto& slide : slides) {
    const std::string file = annotation_file(args_.annotations_folder, slide);
    const SlideLabel* label = label_of(slide);
    if (file.empty()) {
      if (!label || label->label != 0) missing.push_back(slide_name(slide));
      continue;
    }
    const Annotations& a = annotations_[slide] = read_annotations(file, args_.annotation_classes);
    regions += a.malignant.size();
    ignored += size_t(a.ignored);
    markers += size_t(a.markers);
  }
  if (!missing.empty())
    std::fprintf(stderr,
                 "histocnn %s: no %s/<name>.geojson, .xml or .annotations for %zu slide%s (%s%s) "
                 "and no benign "
                 "label: their tiles have no truth\n",
                 args_.command.c_str(), args_.annotations_folder.c_str(), missing.size(),
                 missing.size() > 1 ? "s" : "", missing.front().c_str(),
                 missing.size() > 1 ? ", ..." : "");
  if (!annotations_.empty() && regions == 0 && ignored > 0)
    std::fprintf(stderr,
                 "histocnn %s: none of the %zu annotations has a class that "
                 "--annotation-classes counts as malignant: every tile is benign\n",
                 args_.command.c_str(), ignored);
  if (markers > 0)
    std::fprintf(stderr,
                 "histocnn %s: %zu annotation%s of a malignant class outline%s no area (dots, "
                 "rulers, arrows, two-point ellipses) and %s not counted\n",
                 args_.command.c_str(), markers, markers > 1 ? "s" : "", markers > 1 ? "" : "s",
                 markers > 1 ? "are" : "is");
}

void Cohort::check_model(const ModelFile& model) const {
  require(!labels_ || model.labels.has_binary_view(),
          "--slide-labels: the model's classes (" + model.labels.name +
              ") have no benign/malignant view to score slides by");
}

const SlideLabel* Cohort::label_of(const std::string& slide) const {
  return labels_ ? labels_->find(slide) : nullptr;
}

SlideOptions Cohort::options_for(const SlideOptions& o, const std::string& slide) {
  SlideOptions with = o;
  const SlideTruth truth = truth_of(slide);
  with.annotations = truth.annotations;
  with.benign_without_annotations = annotated() && !truth.annotations && truth.benign;
  with.on_annotated_tiles = [this, slide, patient = truth.patient, annotations = truth.annotations](
                                const std::vector<Tile>& tiles,
                                const std::vector<Prediction>& truths, double um_per_pixel) {
    annotated_tiles_.push_back({slide, patient, truths});
    lesion_slides_.push_back(
        lesion_slide(slide, annotations, tiles, truths, um_per_pixel, LesionOptions{}));
  };
  return with;
}

SlideTruth Cohort::truth_of(const std::string& slide) const {
  SlideTruth truth;
  const auto found = annotations_.find(slide);
  truth.annotations = found == annotations_.end() ? nullptr : &found->second;
  const SlideLabel* label = label_of(slide);
  truth.benign = label && label->label == 0;
  truth.patient = label ? label->patient : "";
  return truth;
}

std::string Cohort::csv_header_tail() const {
  return std::string(labels_ ? ",label" : "") + (annotated() ? ",tile_auc" : "");
}

std::string Cohort::csv_row_tail(const std::string& slide, const nlohmann::json& summary) const {
  const SlideLabel* label = label_of(slide);
  return (label ? std::string(label->label ? ",malignant" : ",benign") : "") +
         (annotated() ? "," + tile_auc(summary) : "");
}

void Cohort::add(const std::string& slide, bool scored, const nlohmann::json& summary) {
  if (const SlideLabel* label = label_of(slide))
    scored_.push_back({slide, label->label, label->patient, scored, summary});
}

void Cohort::finish(const std::string& output, CohortReport* report) const {
  report->score_name = args_.evaluation.score;
  report->score_key = slide_score_key(args_.evaluation.score);
  report->threshold = args_.evaluation.threshold;
  if (labels_) {
    const SlideEvaluation evaluation = evaluate_slides(scored_, args_.evaluation);
    write_slide_evaluation(evaluation, output);
    std::printf("%s -> %s/slide-evaluation.json, slide-roc.png\n", evaluation.headline().c_str(),
                output.c_str());
    report->headlines.push_back(evaluation.headline());
    report->figures.push_back("slide-roc.png");
  }
  if (annotated() && !annotated_tiles_.empty()) {
    const TileEvaluation tiles = evaluate_tiles(annotated_tiles_, {});
    write_tile_evaluation(tiles, annotated_tiles_, output);
    std::printf("%s -> %s/tile-evaluation.json, tile-roc.png\n", tiles.headline().c_str(),
                output.c_str());
    report->headlines.push_back(tiles.headline());
    report->figures.push_back("tile-roc.png");
    const Froc froc = evaluate_lesions(lesion_slides_, LesionOptions{});
    write_lesion_evaluation(froc, output);
    std::printf("%s -> %s/lesion-evaluation.json, froc.png\n", froc.headline().c_str(),
                output.c_str());
    report->headlines.push_back(froc.headline());
    report->figures.push_back("froc.png");
  }
}

int Cohort::label_value(const std::string& slide) const {
  const SlideLabel* label = label_of(slide);
  return label ? label->label : -1;
}

std::string against_annotations(const nlohmann::json& summary) {
  if (!summary.contains("annotations")) return "";
  const nlohmann::json& a = summary["annotations"];
  char text[96] = "";
  if (a["auc"].is_number())
    std::snprintf(text, sizeof text, ", tile AUC %.3f against the annotations",
                  a["auc"].get<double>());
  else if (a["specificity"].is_number())  // every tile benign by the annotations
    std::snprintf(text, sizeof text, ", %.0f%% of its tiles benign as annotated",
                  100 * a["specificity"].get<double>());
  else if (a["sensitivity"].is_number())  // every tile malignant
    std::snprintf(text, sizeof text, ", %.0f%% of its tiles malignant as annotated",
                  100 * a["sensitivity"].get<double>());
  return text;
}

}  // namespace histocnn::cli
