// The cohort flags of `histocnn slide` (and `histocnn tiles`, whose tiles
// take their truth from the same flags): --slide-labels or --tcga-labels
// (each slide's diagnosis: slide-level AUC, sensitivity and specificity,
// slide/slide_evaluation.h) and --annotations (a pathologist's regions: each
// slide's tiles scored against them, slide/tile_truth.h).
//
// Contract: a Cohort reads and checks everything the flags name before any
// slide is scored (a missing label or a malformed annotation file fails at
// once); each scored slide is added in turn; finish() writes the cohort's
// evaluation when there are labels.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/options.h"
#include "data/annotations.h"
#include "data/slide_labels.h"
#include "slide/cohort_report.h"
#include "slide/lesion_evaluation.h"
#include "slide/slide_evaluation.h"
#include "slide/slide_run.h"
#include "slide/tile_evaluation.h"
#include "slide/tile_export.h"
#include "train/checkpoint.h"

namespace histocnn::cli {

struct CohortArgs {
  std::string command = "slide";  // names the command in its messages
  std::string labels_path;        // --slide-labels
  bool tcga_labels = false;       // --tcga-labels: from the slides' TCGA barcodes
  std::string needs_labels;       // the flag given that needs labels, if any
  SlideEvaluationOptions evaluation;
  std::string annotations_folder;  // --annotations
  std::vector<std::string> annotation_classes = default_annotation_classes();
};

void add_cohort_options(CLI::App* cmd, CohortArgs* a);
// --slide-labels FILE (its help: `labels_help`, what the command does with
// labels) and --tcga-labels, one or the other.
void add_label_options(CLI::App* cmd, CohortArgs* a, const std::string& labels_help);
// --annotations and --annotation-classes; `what_for` says what the
// annotations are used for in --annotations' help.
void add_annotation_options(CLI::App* cmd, CohortArgs* a, const std::string& what_for);

// The slide inputs with each folder replaced by the slides in it and below
// it (data/slide.h), and what each folder gave ("histocnn slide: 37 slides
// in gdc/ and below", a line each): printed once the inputs are checked
// (say_found), so a walk through a download is seen to have found what it
// should before hours of work, and an error still comes alone.
struct SlideInputs {
  std::vector<std::string> slides;
  std::string found;
  void say_found() const;
};
SlideInputs expand_slide_folders(const std::vector<std::string>& inputs,
                                 const std::string& command);

class Cohort {
 public:
  // Throws (one line, naming the file) for what the flags name and cannot be
  // used; refuses outputs in `output` that would overwrite the labels.
  Cohort(const CohortArgs& args, const std::vector<std::string>& slides, const std::string& output);
  // Throws when the labels need a benign/malignant view the model lacks.
  void check_model(const ModelFile& model) const;
  // Whether slides.csv is written even for one slide.
  bool active() const { return labels_.has_value() || annotated(); }
  // The slide's options with its annotations (or its benign label) set, and
  // the hook that pools its annotated tiles into the cohort's.
  SlideOptions options_for(const SlideOptions& o, const std::string& slide);
  // What is known of the slide's tiles (`histocnn tiles`): its annotations,
  // whether its label is benign, its patient ("" when the labels name none).
  SlideTruth truth_of(const std::string& slide) const;
  // slides.csv's extra columns: ",label" and ",tile_auc" as the flags ask.
  std::string csv_header_tail() const;
  std::string csv_row_tail(const std::string& slide, const nlohmann::json& summary) const;
  // A scored (or failed) slide, for the cohort's evaluation.
  void add(const std::string& slide, bool scored, const nlohmann::json& summary);
  // With labels: slide-evaluation.json and slide-roc.png in `output`; with
  // annotations: tile-evaluation.json and tile-roc.png (every annotated
  // slide's tiles pooled), lesion-evaluation.json and froc.png (the lesions
  // found, CAMELYON16's FROC); each headline printed and, with the figures
  // and the slide score, put into `report`.
  void finish(const std::string& output, CohortReport* report) const;
  // The slide's label for the report: -1 unknown, 0 benign, 1 malignant.
  int label_value(const std::string& slide) const;

 private:
  bool annotated() const { return !args_.annotations_folder.empty(); }
  const SlideLabel* label_of(const std::string& slide) const;
  void read_annotations_of(const std::vector<std::string>& slides);
  CohortArgs args_;
  std::optional<SlideLabels> labels_;
  std::map<std::string, Annotations> annotations_;  // by slide path
  std::vector<ScoredSlide> scored_;
  std::vector<AnnotatedSlide> annotated_tiles_;  // as each slide finishes
  std::vector<LesionSlide> lesion_slides_;       // the same slides' lesions and detections
};

// ", tile AUC 0.930 against the annotations" for a slide's line (or, where
// the annotations make every tile one class, the share called that class);
// "" when its summary has no annotations.
std::string against_annotations(const nlohmann::json& summary);

}  // namespace histocnn::cli
