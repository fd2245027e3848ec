// A cohort's slide-level evaluation: each slide's label (data/slide_labels.h)
// against one number from its summary.json, the slide score:
//
//   max       p_max               P(malignant) of its most malignant tile
//   top-mean  p_top_mean          the mean P of its --top-k most malignant
//                                 tiles (the default: one false tile does
//                                 not decide, a small tumour still shows)
//   mean      p_mean              the mean P of its tiles
//   area      malignant_area_fraction   its tissue's share with P >= 0.5
//
// A slide is called malignant when its score is at least the threshold. The
// AUC of every score, and the chosen score's sensitivity, specificity and
// balanced accuracy, come with 95% intervals from a bootstrap over patients
// (when the labels name them; slides of one patient are alike, so drawing
// them apart would make the intervals too narrow) or else over slides.
// Slides that failed, had no tissue scored or whose scores are not numbers
// are left out and listed with the reason. The threshold Youden's J picks on
// these slides is reported too, flagged as optimistic: a threshold is chosen
// on one cohort and applied to another.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/bootstrap.h"
#include "train/metrics.h"

namespace histocnn {

// The score names above, in that order.
const std::vector<std::string>& slide_score_names();
// The summary.json key of a score name; throws for an unknown name.
std::string slide_score_key(const std::string& score);

struct ScoredSlide {
  std::string slide;       // as given on the command line
  int label = 0;           // 0 benign, 1 malignant
  std::string patient;     // "" : the slide is its own bootstrap unit
  bool scored = false;     // false: the slide failed
  nlohmann::json summary;  // its summary.json when scored
};

struct SlideEvaluationOptions {
  // The scores to compare (empty: slide_score_names()); "mil" is the
  // summary's p_mil, a slide-level model's P (slide/mil_cohort.h).
  std::vector<std::string> scores;
  std::string score = "top-mean";
  double threshold = 0.5;
  int replicates = 2000;
  uint64_t seed = 1;
};

struct SlideEvaluation {
  SlideEvaluationOptions options;
  std::vector<std::string> evaluated;                         // slides with a score
  std::vector<double> chosen_scores;                          // their chosen score
  std::vector<std::pair<std::string, std::string>> left_out;  // (slide, why)
  std::map<std::string, std::vector<Prediction>> by_score;    // every score, per evaluated slide
  Metrics metrics;                                            // of the chosen score
  std::map<std::string, Interval> auc_interval;               // per score
  Interval sensitivity, specificity, balanced_accuracy;       // of the chosen score
  std::string unit;                                           // "patient" or "slide"
  int units = 0;
  nlohmann::json to_json() const;
  // One line: the AUC with its interval, sensitivity and specificity.
  std::string headline() const;
};

// Requires: options.score is one of the scores compared, 0 <= threshold <= 1.
// Deterministic for a seed.
SlideEvaluation evaluate_slides(const std::vector<ScoredSlide>& slides,
                                const SlideEvaluationOptions& options);

// <folder>/slide-roc.{dat,png,svg} (one curve per score) and
// <folder>/slide-evaluation.json, the figure first so that a JSON is never
// left beside a stale figure. Throws when gnuplot fails; where it is not installed, the scripts
// alone (render_gnuplot).
void write_slide_evaluation(const SlideEvaluation& evaluation, const std::string& folder);

}  // namespace histocnn
