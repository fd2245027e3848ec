#include "slide/cohort_report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "study/markdown_html.h"

namespace histocnn {
namespace {

// The slide's score, or -1 when it has none (failed, no tissue, NaN).
double score_of(const ReportedSlide& s, const std::string& key) {
  if (s.status != "done" || !s.summary.contains(key) || !s.summary[key].is_number()) return -1;
  return s.summary[key].get<double>();
}

std::string fixed(double v, const char* format) {
  char text[32];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

// A table cell holds no '|' (it would split the cell).
std::string cell(std::string text) {
  std::replace(text.begin(), text.end(), '|', '/');
  return text;
}

std::string label_name(int label) {
  return label < 0 ? "" : label ? "malignant" : "benign";
}

// "malignant", or with a known label "malignant ✓", "benign, **missed**".
std::string call_text(int label, bool called) {
  const std::string call = called ? "malignant" : "benign";
  if (label < 0) return call;
  if (label == int(called)) return call + " ✓";
  return call + (label ? ", **missed**" : ", **false alarm**");
}

std::string tile_auc(const ReportedSlide& s) {
  if (!s.summary.contains("annotations")) return "";
  const nlohmann::json& auc = s.summary["annotations"]["auc"];
  return auc.is_number() ? fixed(auc.get<double>(), "%.3f") : "n/a";
}

// The slides scored, most malignant first (ties by name), then the rest.
std::vector<const ReportedSlide*> in_review_order(const CohortReport& r) {
  std::vector<const ReportedSlide*> order;
  for (const ReportedSlide& s : r.slides) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(), [&](const ReportedSlide* a, const ReportedSlide* b) {
    return score_of(*a, r.score_key) > score_of(*b, r.score_key);
  });
  return order;
}

// Whether `slide --mil` gave slides a P of its own that the table's score
// column does not already show.
bool slide_model_column(const CohortReport& r) {
  if (r.score_key == "p_mil") return false;
  for (const ReportedSlide& s : r.slides)
    if (s.summary.contains("mil")) return true;
  return false;
}

std::string slide_model_cell(const ReportedSlide& s) {
  const double p = score_of(s, "p_mil");
  return p < 0 ? "" : fixed(p, "%.3f");
}

std::string table(const CohortReport& r, const std::vector<const ReportedSlide*>& order) {
  const bool mil = slide_model_column(r);
  std::string md = "| # | slide | label | " + r.score_name + " | called at " +
                   fixed(r.threshold, "%g") + " | tile AUC | tissue mm² |" +
                   (mil ? " slide model P |" : "") + "\n|---|---|---|---|---|---|---|" +
                   (mil ? "---|" : "") + "\n";
  int rank = 0;
  for (const ReportedSlide* s : order) {
    const double score = score_of(*s, r.score_key);
    const std::string name = "[" + cell(s->slide) + "](#slide-" + std::to_string(++rank) + ")";
    const std::string tail = mil ? " " + slide_model_cell(*s) + " |" : "";
    if (score < 0) {
      md += "| " + std::to_string(rank) + " | " + cell(s->slide) + " | " + label_name(s->label) +
            " | " + (s->status == "done" ? "no tissue" : s->status) + " | | | |" + tail + "\n";
      continue;
    }
    const double tissue = s->summary.value("tissue_mm2", 0.0);
    md += "| " + std::to_string(rank) + " | " + name + " | " + label_name(s->label) + " | " +
          fixed(score, "%.3f") + " | " + call_text(s->label, score >= r.threshold) + " | " +
          tile_auc(*s) + " | " + fixed(tissue, "%.1f") + " |" + tail + "\n";
  }
  return md;
}

// Where `slide --mil`'s model looked, under the slide's heatmap.
std::string attention_figure(const ReportedSlide& s, const std::string& map) {
  if (!s.summary.contains("mil") || score_of(s, "p_mil") < 0) return "";
  return "\nThe slide model: P(malignant) " + fixed(score_of(s, "p_mil"), "%.3f") +
         "; where it looked (each tile's attention as its percentile within the slide):\n\n"
         "![attention of " +
         s.slide + "](" + s.folder + "/attention" + map + ")\n";
}

// "; 0.54 mm² of pen ink left out ([tissue mask](...))" where the slide had ink.
std::string pen_ink_note(const ReportedSlide& s) {
  const double mm2 = s.summary.value("pen_ink_mm2", 0.0);
  if (mm2 <= 0) return "";
  return "; " + fixed(mm2, "%.2f") + " mm² of pen ink left out (grey in its [tissue mask](" +
         s.folder + "/tissue.png))";
}

// The median over the cohort's scored slides of their median tile focus;
// 0 with fewer than three (too few to say what is usual).
double cohort_focus(const CohortReport& r) {
  std::vector<double> medians;
  for (const ReportedSlide& s : r.slides)
    if (s.status == "done" && s.summary.contains("focus_median") &&
        s.summary["focus_median"].is_number())
      medians.push_back(s.summary["focus_median"].get<double>());
  if (medians.size() < 3) return 0;
  std::sort(medians.begin(), medians.end());
  return medians[medians.size() / 2];
}

// "; 23% of its tissue out of focus, left out of its score" (--min-focus),
// or, with no threshold, "; blurred? its tiles' focus (median 27) is under a
// quarter of the cohort's (1763)": a slide to look at before trusting it.
std::string focus_note(const ReportedSlide& s, double cohort) {
  const double share = s.summary.value("out_of_focus_fraction", 0.0);
  if (share > 0)
    return "; " + fixed(100 * share, "%.0f") + "% of its tissue out of focus (focus < " +
           fixed(s.summary.value("min_focus", 0.0), "%g") + "), left out of its score";
  const double median = s.summary.value("focus_median", -1.0);
  if (cohort <= 0 || median < 0 || median >= kBlurredShareOfCohortFocus * cohort) return "";
  return "; blurred? its tiles' focus (median " + fixed(median, "%.0f") +
         ") is under a quarter of the cohort's (" + fixed(cohort, "%.0f") + ")";
}

std::string heatmaps(const CohortReport& r, const std::vector<const ReportedSlide*>& order) {
  const std::string map = r.maps_drawn ? ".png" : "-overlay.png";
  std::string md;
  const double cohort = cohort_focus(r);
  int rank = 0;
  for (const ReportedSlide* s : order) {
    const double score = score_of(*s, r.score_key);
    ++rank;
    if (score < 0) continue;
    md += "\n### Slide " + std::to_string(rank) + "\n\n" + s->slide + ": " + r.score_name + " " +
          fixed(score, "%.3f") + ", called " + call_text(s->label, score >= r.threshold) +
          (s->label < 0 ? "" : " (label " + label_name(s->label) + ")") + pen_ink_note(*s) +
          focus_note(*s, cohort) + "\n\n![heatmap of " + s->slide + "](" + s->folder + "/heatmap" +
          map + ")\n" + attention_figure(*s, map);
  }
  return md;
}

}  // namespace

std::string cohort_report_markdown(const CohortReport& r) {
  std::string md = "# " + std::to_string(r.slides.size()) + " slides\n\n";
  for (const std::string& line : r.headlines) md += line + "\n\n";
  if (!r.maps_drawn)
    md +=
        "*Maps and figures not drawn: gnuplot is not installed here (Debian: gnuplot-nox). "
        "Each heatmap below is its overlay without axes or colour bar (blue at P = 0, yellow "
        "at 0.5, red at 1). Each figure's script (FIGURE.gp beside it) draws it when gnuplot "
        "runs it from the folder `histocnn slide` ran in (its paths are relative to that "
        "folder), and the same `histocnn slide` command run where gnuplot is installed draws "
        "every map without scoring again.*\n\n";
  for (const std::string& figure : r.figures)
    md += r.maps_drawn ? "![" + figure + "](" + figure + ")\n\n"
                       : "Not drawn: " + figure + ".gp draws " + figure + ".\n\n";
  const auto order = in_review_order(r);
  md += "## Every slide, the most malignant first\n\n" + table(r, order);
  md += "\n## The heatmaps in that order\n" + heatmaps(r, order);
  return md;
}

void write_cohort_report(const CohortReport& r, const std::string& output) {
  const std::string md = cohort_report_markdown(r);
  write_file_atomically((std::filesystem::path(output) / "report.md").string(), md);
  write_file_atomically((std::filesystem::path(output) / "report.html").string(),
                        markdown_to_html(md, "histocnn slides: " + output));
}

}  // namespace histocnn
