// The cohort's review page (slide/cohort_report.h): the most malignant slide
// first, wrong calls named, slides without a score last, links to each
// slide's heatmap section that work in the HTML, pen ink left out and blurred
// slides named.
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "slide/cohort_report.h"
#include "test_util.h"

namespace histocnn {
namespace {

ReportedSlide done(const std::string& name, double top_mean, int label) {
  return {name + ".svs",
          name,
          "done",
          {{"p_top_mean", top_mean}, {"tissue_mm2", 12.34}, {"p_max", 1.0}},
          label};
}

TEST(CohortReport, MostMalignantFirstWrongCallsNamedAndHeatmapsLinked) {
  CohortReport r;
  r.slides = {done("a", 0.20, 0),
              done("b", 0.95, 1),
              done("c", 0.70, 0),
              done("d", 0.30, 1),
              {"e.svs", "e", "failed", nlohmann::json::object(), 1},
              done("f", 0.10, -1)};
  r.slides[1].summary["annotations"] = {{"auc", 0.9876}};
  r.slides[2].summary["pen_ink_mm2"] = 0.5427;  // c was circled in pen
  r.headlines = {"slide level (top-mean, 5 slides): AUC 0.667"};
  r.figures = {"slide-roc.png"};
  const std::string md = cohort_report_markdown(r);
  const auto at = [&](const std::string& text) { return md.find(text); };
  EXPECT_EQ(md.rfind("# 6 slides\n", 0), 0u) << md;
  EXPECT_NE(at("slide level (top-mean, 5 slides): AUC 0.667\n"), std::string::npos);
  EXPECT_NE(at("![slide-roc.png](slide-roc.png)"), std::string::npos);
  EXPECT_NE(at("| 1 | [b.svs](#slide-1) | malignant | 0.950 | malignant ✓ | 0.988 | 12.3 |"),
            std::string::npos)
      << md;
  EXPECT_NE(at("| 2 | [c.svs](#slide-2) | benign | 0.700 | malignant, **false alarm** |"),
            std::string::npos);
  EXPECT_NE(at("| 3 | [d.svs](#slide-3) | malignant | 0.300 | benign, **missed** |"),
            std::string::npos);
  EXPECT_NE(at("| 5 | [f.svs](#slide-5) |  | 0.100 | benign |  |"), std::string::npos) << md;
  EXPECT_NE(at("| 6 | e.svs | malignant | failed |"), std::string::npos) << md;
  EXPECT_LT(at("### Slide 1\n\nb.svs: top-mean 0.950, called malignant ✓ (label malignant)"),
            at("### Slide 2\n"));
  EXPECT_NE(at("![heatmap of c.svs](c/heatmap.png)"), std::string::npos);
  EXPECT_NE(at("c.svs: top-mean 0.700, called malignant, **false alarm** (label benign); 0.54 "
               "mm² of pen ink left out (grey in its [tissue mask](c/tissue.png))\n"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("pen ink"), md.rfind("pen ink")) << "only the slide with ink says so";
  EXPECT_EQ(at("### Slide 6"), std::string::npos) << "a failed slide has no heatmap";
  testing::TempDir dir;
  write_cohort_report(r, dir.path());
  const std::string html = read_file(dir / "report.html");
  EXPECT_NE(html.find("<a href=\"#slide-2\">c.svs</a>"), std::string::npos) << html;
  EXPECT_NE(html.find("<h3 id=\"slide-2\">Slide 2</h3>"), std::string::npos) << html;
  EXPECT_EQ(read_file(dir / "report.md"), md);
}

// Without gnuplot (a GPU node): the page says so once, shows each slide's
// overlay and attention overlay, and names each figure's script.
TEST(CohortReport, WithoutGnuplotShowsTheOverlaysAndNamesTheScripts) {
  CohortReport r;
  r.slides = {done("a", 0.20, 0), done("b", 0.95, 1)};
  r.slides[1].summary["p_mil"] = 0.987, r.slides[1].summary["mil"] = {{"tiles", 12}};
  r.figures = {"slide-roc.png"};
  r.maps_drawn = false;
  const std::string md = cohort_report_markdown(r);
  EXPECT_NE(md.find("*Maps and figures not drawn: gnuplot is not installed here"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("![heatmap of a.svs](a/heatmap-overlay.png)"), std::string::npos) << md;
  EXPECT_NE(md.find("![attention of b.svs](b/attention-overlay.png)"), std::string::npos) << md;
  EXPECT_NE(md.find("Not drawn: slide-roc.png.gp draws slide-roc.png."), std::string::npos) << md;
  EXPECT_EQ(md.find("heatmap.png)"), std::string::npos) << md;
  EXPECT_EQ(md.find("![slide-roc.png]"), std::string::npos) << md;
  r.maps_drawn = true;
  EXPECT_EQ(cohort_report_markdown(r).find("not drawn"), std::string::npos);
}

// `slide --mil`: the slide model's P in its own column (unless it is the
// score the slides are called by) and its attention map under the heatmap.
TEST(CohortReport, TheSlideModelsPAndAttentionAreShown) {
  CohortReport r;
  r.score_name = "top-mean";
  r.score_key = "p_top_mean";
  r.slides = {done("a", 0.20, 0), done("b", 0.95, 1), done("g", 0.5, 0)};
  r.slides[0].summary["p_mil"] = 0.031, r.slides[0].summary["mil"] = {{"tiles", 10}};
  r.slides[1].summary["p_mil"] = 0.987, r.slides[1].summary["mil"] = {{"tiles", 12}};
  r.slides[2].summary["p_mil"] = nullptr, r.slides[2].summary["mil"] = {{"tiles", 0}};
  const std::string md = cohort_report_markdown(r);
  EXPECT_NE(
      md.find("| tile AUC | tissue mm² | slide model P |\n|---|---|---|---|---|---|---|---|\n"),
      std::string::npos)
      << md;
  EXPECT_NE(
      md.find("| 1 | [b.svs](#slide-1) | malignant | 0.950 | malignant ✓ |  | 12.3 | 0.987 |"),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("| 12.3 |  |\n"), std::string::npos) << "g has no P: an empty cell\n" << md;
  EXPECT_NE(md.find("The slide model: P(malignant) 0.031; where it looked"), std::string::npos);
  EXPECT_NE(md.find("![attention of b.svs](b/attention.png)"), std::string::npos) << md;
  EXPECT_EQ(md.find("![attention of g.svs]"), std::string::npos) << "no tiles, no map";
  // Called by the slide model: its P is the score column, not a second one.
  r.score_name = "mil";
  r.score_key = "p_mil";
  const std::string by_mil = cohort_report_markdown(r);
  EXPECT_EQ(by_mil.find("slide model P |"), std::string::npos) << by_mil;
  EXPECT_NE(by_mil.find("| 1 | [b.svs](#slide-1) | malignant | 0.987 |"), std::string::npos)
      << by_mil;
  // Without --mil nothing changes.
  for (ReportedSlide& s : r.slides) s.summary.erase("mil"), s.summary.erase("p_mil");
  r.score_name = "top-mean";
  r.score_key = "p_top_mean";
  EXPECT_EQ(cohort_report_markdown(r).find("slide model"), std::string::npos);
}

// Focus: tissue set aside by --min-focus is said with its share; without a
// threshold, a slide whose median focus is under a quarter of the cohort's
// is flagged, and nothing is said with fewer than three slides to compare.
TEST(CohortReport, BlurredSlidesAreNamed) {
  CohortReport r;
  r.slides = {done("a", 0.2, 0), done("b", 0.9, 1), done("c", 0.5, 0), done("d", 0.3, 1)};
  const double medians[] = {1800, 1500, 300, 1700};
  for (size_t i = 0; i < 4; ++i) r.slides[i].summary["focus_median"] = medians[i];
  r.slides[3].summary["out_of_focus_fraction"] = 0.234;
  r.slides[3].summary["min_focus"] = 350;
  std::string md = cohort_report_markdown(r);
  EXPECT_NE(md.find("c.svs: top-mean 0.500, called malignant, **false alarm** (label benign); "
                    "blurred? its tiles' focus (median 300) is under a quarter of the cohort's "
                    "(1700)\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("d.svs: top-mean 0.300, called benign, **missed** (label malignant); 23% of "
                    "its tissue out of focus (focus < 350), left out of its score\n"),
            std::string::npos)
      << md;
  EXPECT_EQ(md.find("blurred?"), md.rfind("blurred?")) << md;
  r.slides.resize(2);
  r.slides[1].summary["focus_median"] = 100;
  EXPECT_EQ(cohort_report_markdown(r).find("blurred?"), std::string::npos);
}

}  // namespace
}  // namespace histocnn
