// A cohort's review page, <output>/report.md and report.html: what a
// pathologist looks at first. The headlines (slide level, tile level), the
// ROC figures, a table of every slide from the most malignant down with its
// label and call where known (wrong calls named: missed, false alarm), then
// each slide's heatmap in the same order, with what to check before trusting
// it: pen ink left out, tissue out of focus (set aside by --min-focus, or,
// without a threshold, a slide whose median tile focus is under
// kBlurredShareOfCohortFocus of the cohort's: blur is relative to stain and
// scale, and a cohort shares both). Written after `histocnn slide` scores
// several slides (or a labelled or annotated one).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace histocnn {

// A slide whose median tile focus is under this share of the cohort's
// median (of at least three slides) is flagged as possibly blurred. A
// quarter: on the synthetic slide a blur of 2 µm (~one network pixel of a
// 64-px GlaS model) divides the median by 7.7, 1 µm by 1.9
// (docs/design/slides.md, Focus).
constexpr double kBlurredShareOfCohortFocus = 0.25;

struct ReportedSlide {
  std::string slide;       // as given on the command line
  std::string folder;      // its outputs, relative to the report
  std::string status;      // done, failed
  nlohmann::json summary;  // its summary.json when done
  int label = -1;          // -1 unknown, 0 benign, 1 malignant
};

struct CohortReport {
  std::vector<ReportedSlide> slides;
  std::string score_key = "p_top_mean";  // summary.json's key the slides are sorted by
  std::string score_name = "top-mean";
  double threshold = 0.5;              // a slide is called malignant at or above it
  std::vector<std::string> headlines;  // the cohort's evaluation lines
  std::vector<std::string> figures;    // file names beside the report (slide-roc.png, ...)
  // false: gnuplot was not installed, so the report shows each slide's
  // overlays (heatmap-overlay.png) and names the scripts of the figures.
  bool maps_drawn = true;
};

// The Markdown (data only: testable without writing).
std::string cohort_report_markdown(const CohortReport& report);
// <output>/report.md and report.html, each written atomically.
void write_cohort_report(const CohortReport& report, const std::string& output);

}  // namespace histocnn
