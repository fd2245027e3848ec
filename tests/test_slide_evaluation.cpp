// A cohort's slide labels (data/slide_labels.h, from a file or from TCGA
// barcodes) and the slide-level
// evaluation (slide/slide_evaluation.h): known answers for AUC, the
// confusion at a threshold and Youden's threshold, slides left out with
// their reason, bootstrap intervals over patients, and one-line errors for
// label files a user gets wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/slide_labels.h"
#include "data/tcga_barcode.h"
#include "slide/slide_evaluation.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::error_of;

TEST(SlideLabels, ReadTheColumnsByNameAndMatchSlidesByPathNameOrStem) {
  const SlideLabels labels = SlideLabels::parse(
      "\xEF\xBB\xBF"
      "Label, Patient ,site,Slide\r\n"
      "malignant,P1,colon,case01.svs\r\n\r\n"
      " Benign ,P1,colon,case02\r\n"
      "tumor,P2,rectum,scans/case03.ndpi\r\n"
      "0,P3,colon,case04\r\n",
      "labels.csv");
  EXPECT_TRUE(labels.has_patients());
  ASSERT_NE(labels.find("/data/case01.svs"), nullptr);  // by file name
  EXPECT_EQ(labels.find("/data/case01.svs")->label, 1);
  EXPECT_EQ(labels.find("/data/case01.svs")->patient, "P1");
  EXPECT_EQ(labels.find("/data/case01.svs")->line, 2);
  ASSERT_NE(labels.find("case02.tif"), nullptr);  // by the name without extension
  EXPECT_EQ(labels.find("case02.tif")->label, 0);
  ASSERT_NE(labels.find("scans/case03.ndpi"), nullptr);  // as given
  EXPECT_EQ(labels.find("scans/case03.ndpi")->label, 1);
  EXPECT_EQ(labels.find("other/case03.ndpi"), nullptr);
  EXPECT_EQ(labels.find("case04.mrxs")->label, 0);
  EXPECT_EQ(labels.find("case05.svs"), nullptr);
  EXPECT_NO_THROW(labels.require_every({"a/case01.svs", "case02.tif"}));
  const std::string missing = error_of([&] {
    labels.require_every({"a/case01.svs", "b/case05.svs", "case06.tif"});
  });
  EXPECT_EQ(missing,
            "--slide-labels labels.csv: no row for 2 slides: case05.svs, case06.tif (a row names "
            "a slide as given, by its file name, without the extension, or by the barcode of a "
            "DICOM slide or a GDC file)");
  const SlideLabels twice = SlideLabels::parse("slide,label\na.svs,0\na,1\n", "l.csv");
  EXPECT_EQ(error_of([&] { twice.require_every({"d/a.svs"}); }),
            "l.csv: lines 2 and 3 both name slide d/a.svs; keep one");
  // TCGA's tables name a slide by its barcode, the GDC its file by the
  // barcode and the file's UUID; a dot elsewhere makes no such name.
  const SlideLabels tcga = SlideLabels::parse(
      "slide,label\nTCGA-AA-3512-01Z-00-DX1,malignant\ncase,benign\n", "tcga.csv");
  ASSERT_NE(tcga.find("gdc/4f/TCGA-AA-3512-01Z-00-DX1.4f4ecb5c-6f49.svs"), nullptr);
  EXPECT_EQ(tcga.find("gdc/4f/TCGA-AA-3512-01Z-00-DX1.4f4ecb5c-6f49.svs")->label, 1);
  EXPECT_EQ(tcga.find("gdc/TCGA-AA-3512-11A-01-TS1.9a.svs"), nullptr);
  EXPECT_EQ(tcga.find("case.01.svs"), nullptr);
  const SlideLabels plain = SlideLabels::parse("slide,label\nx,positive\ny,NEGATIVE\n", "l.csv");
  EXPECT_FALSE(plain.has_patients());
  EXPECT_EQ(plain.find("x.svs")->label, 1);
  EXPECT_EQ(plain.find("y.svs")->label, 0);
  EXPECT_EQ(plain.find("y.svs")->patient, "");
}

TEST(SlideLabels, MistakesGetOneLineNamingTheFileAndLine) {
  auto error = [](const std::string& content) {
    return error_of([&] { SlideLabels::parse(content, "l.csv"); });
  };
  EXPECT_EQ(error(""), "l.csv: empty file (expected a header: slide,label[,patient])");
  EXPECT_EQ(error("name,grade\na,benign\n"),
            "l.csv: the header must name the columns 'slide' and 'label' (and optionally "
            "'patient'), e.g. slide,label,patient");
  EXPECT_EQ(error("slide,label\n"), "l.csv: no slide rows after the header");
  EXPECT_EQ(error("slide,label\na,benign\nb,maybe\n"),
            "l.csv line 3: label 'maybe' is not benign or malignant (nor 0/1, "
            "negative/positive, normal/tumor)");
  EXPECT_EQ(error("slide,label\na,benign\n\na,malignant\n"),
            "l.csv line 4: slide 'a' is listed twice (also line 2)");
  EXPECT_EQ(error("slide,label\n,benign\n"), "l.csv line 2: no slide name");
  EXPECT_EQ(error("slide,label,patient\na,benign,\n"),
            "l.csv line 2: no patient (the column is there: fill it in)");
  EXPECT_EQ(error("label,slide\nbenign\n"), "l.csv line 2: no slide name");
  testing::TempDir dir;
  EXPECT_EQ(error_of([&] { SlideLabels::read(dir / "none.csv"); }),
            "--slide-labels " + (dir / "none.csv") + ": no such file");
  EXPECT_EQ(error_of([&] { SlideLabels::read(dir.path()); }),
            "--slide-labels " + dir.path() + ": not a regular file");
}

TEST(SlideLabels, TcgaBarcodesSayTheSampleTypeAndThePatient) {
  const auto sample = tcga_sample_of("TCGA-AA-3512-01Z-00-DX1");
  ASSERT_TRUE(sample.has_value());
  EXPECT_EQ(sample->participant, "TCGA-AA-3512");
  EXPECT_EQ(sample->sample_type, 1);
  // As the GDC names slide files: the barcode, a dot, the file's UUID.
  EXPECT_EQ(
      tcga_sample_of("TCGA-A6-2671-11A-01-TS1.59eb15d5-5d0c-4b8e-9d5c-3f6f1e0a9c12")->sample_type,
      11);
  EXPECT_EQ(tcga_sample_of("TCGA-CZ-4863-02")->sample_type, 2);
  EXPECT_EQ(sample->slide_kind, "DX");
  EXPECT_EQ(tcga_sample_of("TCGA-A6-2671-11A-01-BS1.svs")->slide_kind, "BS");
  EXPECT_EQ(tcga_sample_of("TCGA-CZ-4863-02")->slide_kind, "");
  EXPECT_EQ(tcga_sample_of("TCGA-CZ-4863-02A-1-TS1")->slide_kind, "");
  EXPECT_TRUE(tcga_frozen_section("TS"));
  EXPECT_TRUE(tcga_frozen_section("BS"));
  EXPECT_FALSE(tcga_frozen_section("DX"));
  EXPECT_FALSE(tcga_frozen_section(""));
  for (const char* not_a_barcode :
       {"", "TCGA-AA-3512", "TCGA-AA-3512-1", "TCGA-AA-3512-001Z", "TCGA-aa-3512-01Z",
        "TCGA-AA_3512-01Z", "TCGA-AA-35-2-01Z", "TARGET-20-PANSBH-01A", "case01",
        "TCGA-AA-3512-00Z", "XTCGA-AA-3512-01Z"})
    EXPECT_FALSE(tcga_sample_of(not_a_barcode).has_value()) << not_a_barcode;
  EXPECT_EQ(tcga_sample_label(1), 1);   // primary solid tumour
  EXPECT_EQ(tcga_sample_label(6), 1);   // metastatic
  EXPECT_EQ(tcga_sample_label(9), 1);   // primary blood-derived cancer, bone marrow
  EXPECT_EQ(tcga_sample_label(40), 1);  // recurrent blood-derived cancer
  EXPECT_EQ(tcga_sample_label(10), 0);  // blood-derived normal
  EXPECT_EQ(tcga_sample_label(11), 0);  // solid tissue normal
  EXPECT_EQ(tcga_sample_label(19), 0);
  EXPECT_EQ(tcga_sample_label(20), -1);  // control analyte
  EXPECT_EQ(tcga_sample_label(50), -1);  // cell line
  EXPECT_EQ(tcga_sample_label(60), -1);  // xenograft
  EXPECT_EQ(tcga_sample_label(99), -1);

  const SlideLabels labels = SlideLabels::from_tcga_barcodes(
      {"gdc/a/TCGA-AA-3512-01Z-00-DX1.4f4ecb5c.svs", "gdc/b/TCGA-AA-3512-11A-01-TS1.9a.svs",
       "TCGA-G4-6320-06A-01-TS1.tif"});
  EXPECT_TRUE(labels.has_patients());
  EXPECT_EQ(labels.find("gdc/a/TCGA-AA-3512-01Z-00-DX1.4f4ecb5c.svs")->label, 1);
  EXPECT_EQ(labels.find("gdc/a/TCGA-AA-3512-01Z-00-DX1.4f4ecb5c.svs")->patient, "TCGA-AA-3512");
  EXPECT_EQ(labels.find("gdc/b/TCGA-AA-3512-11A-01-TS1.9a.svs")->label, 0);
  EXPECT_EQ(labels.find("gdc/b/TCGA-AA-3512-11A-01-TS1.9a.svs")->patient, "TCGA-AA-3512");
  EXPECT_EQ(labels.find("TCGA-G4-6320-06A-01-TS1.tif")->label, 1);
  EXPECT_NO_THROW(labels.require_every(
      {"gdc/a/TCGA-AA-3512-01Z-00-DX1.4f4ecb5c.svs", "TCGA-G4-6320-06A-01-TS1.tif"}));
  // A malignant frozen section: the preparations do not split the classes.
  EXPECT_EQ(labels.caveat(), "");
  // Normal frozen sections against diagnostic FFPE slides: they do.
  const std::string caveat =
      SlideLabels::from_tcga_barcodes(
          {"TCGA-AA-3512-01Z-00-DX1.svs", "TCGA-AA-3512-11A-01-TS1.svs", "TCGA-AA-3513-11A-01-BS1"})
          .caveat();
  EXPECT_NE(caveat.find("every benign slide is a frozen section"), std::string::npos) << caveat;
  EXPECT_EQ(SlideLabels::from_tcga_barcodes({"TCGA-AA-3512-11A-01-TS1"}).caveat(), "");
  EXPECT_EQ(SlideLabels::parse("slide,label\na,0\nb,1\n", "l.csv").caveat(), "");
  EXPECT_EQ(error_of([] {
              SlideLabels::from_tcga_barcodes({"TCGA-AA-3512-01Z-00-DX1.svs", "x/case01.svs",
                                               "case02.tif", "c3.ndpi", "c4.tif"});
            }),
            "--tcga-labels: no TCGA barcode (TCGA-XX-XXXX-NN...) at the start of case01, case02, "
            "c3, ...; name the labels in --slide-labels instead");
  EXPECT_EQ(error_of([] { SlideLabels::from_tcga_barcodes({"TCGA-AA-3512-20A-01-TS1.svs"}); }),
            "--tcga-labels: a sample type that is neither tumour (01-09, 40) nor normal (10-19): "
            "TCGA-AA-3512-20A-01-TS1 (type 20)");
}

// A slide's summary.json with every slide score set from `top_mean`
// (max = top_mean + 0.1 capped, mean = top_mean / 2, area = mean).
ScoredSlide slide(const std::string& name, int label, double top_mean,
                  const std::string& patient = "") {
  ScoredSlide s;
  s.slide = name;
  s.label = label;
  s.patient = patient;
  s.scored = true;
  s.summary = {{"tiles_scored", 10},
               {"p_top_mean", top_mean},
               {"p_max", std::min(1.0, top_mean + 0.1)},
               {"p_mean", top_mean / 2},
               {"malignant_area_fraction", top_mean / 2}};
  return s;
}

TEST(SlideEvaluation, KnownAucConfusionAndSlidesLeftOut) {
  // Malignant 0.7 and 0.4 against benign 0.6 and 0.2: 3 of 4 pairs ordered.
  std::vector<ScoredSlide> cohort = {slide("m1", 1, 0.7), slide("m2", 1, 0.4), slide("b1", 0, 0.6),
                                     slide("b2", 0, 0.2)};
  ScoredSlide failed;
  failed.slide = "broken.svs";
  failed.label = 1;
  ScoredSlide glass = failed;
  glass.slide = "glass.svs";
  glass.scored = true;
  glass.summary = {{"tiles_scored", 0}};
  ScoredSlide diverged = slide("nan.svs", 1, 0.5);
  diverged.summary["p_mean"] = nullptr;  // how a NaN comes back from summary.json
  cohort.push_back(failed);
  cohort.push_back(glass);
  cohort.push_back(diverged);
  const SlideEvaluation e = evaluate_slides(cohort, {});
  EXPECT_DOUBLE_EQ(e.metrics.auc, 0.75);
  EXPECT_EQ(e.metrics.tp, 1);  // m1; m2 falls under 0.5
  EXPECT_EQ(e.metrics.fn, 1);
  EXPECT_EQ(e.metrics.fp, 1);  // b1
  EXPECT_EQ(e.metrics.tn, 1);
  ASSERT_EQ(e.left_out.size(), 3u);
  EXPECT_EQ(e.left_out[0], std::make_pair(std::string("broken.svs"), std::string("failed")));
  EXPECT_EQ(e.left_out[1],
            std::make_pair(std::string("glass.svs"), std::string("no tissue scored")));
  EXPECT_EQ(e.left_out[2],
            std::make_pair(std::string("nan.svs"), std::string("its scores are not numbers")));
  const nlohmann::json j = e.to_json();
  EXPECT_EQ(j["slides"], 4);
  EXPECT_EQ(j["malignant"], 2);
  EXPECT_DOUBLE_EQ(j["sensitivity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["specificity"].get<double>(), 0.5);
  EXPECT_EQ(j["bootstrap"]["unit"], "slide");
  EXPECT_EQ(j["bootstrap"]["units"], 4);
  // Every score is there; max keeps the same order, so the same AUC.
  EXPECT_DOUBLE_EQ(j["by_score"]["max"]["auc"].get<double>(), 0.75);
  EXPECT_EQ(j["by_score"]["area"]["summary_key"], "malignant_area_fraction");
  // Youden: the cut under 0.7 (sensitivity 0.5, specificity 1: J 0.5) beats
  // the one under 0.4 (J 0.5 too, lower); halfway between 0.7 and 0.6.
  EXPECT_DOUBLE_EQ(j["threshold_from_these_slides"]["threshold"].get<double>(),
                   (double(0.7f) + double(0.6f)) / 2);
  EXPECT_DOUBLE_EQ(j["threshold_from_these_slides"]["specificity"].get<double>(), 1.0);
  EXPECT_EQ(j["per_slide"][1]["called"], "benign");
  EXPECT_NE(e.headline().find("AUC 0.750 (95% CI "), std::string::npos) << e.headline();
  EXPECT_NE(
      e.headline().find(
          "; at 0.5: sensitivity 0.50, specificity 0.50; 3 slides left out (failed, no tissue "
          "scored, its scores are not numbers)"),
      std::string::npos)
      << e.headline();
}

TEST(SlideEvaluation, TheThresholdAndTheScoreAreTheUsersChoice) {
  const std::vector<ScoredSlide> cohort = {slide("m1", 1, 0.7), slide("m2", 1, 0.4),
                                           slide("b1", 0, 0.6), slide("b2", 0, 0.2)};
  SlideEvaluationOptions o;
  o.score = "area";  // top_mean / 2: 0.35, 0.2 against 0.3, 0.1
  o.threshold = 0.15;
  const SlideEvaluation e = evaluate_slides(cohort, o);
  EXPECT_EQ(e.metrics.tp, 2);
  EXPECT_EQ(e.metrics.fp, 1);
  EXPECT_EQ(e.metrics.tn, 1);
  EXPECT_DOUBLE_EQ(e.to_json()["per_slide"][3]["score"].get<double>(), 0.1);
  o.score = "median";
  EXPECT_EQ(error_of([&] { evaluate_slides(cohort, o); }),
            "--slide-score median: not one of max, top-mean, mean, area");
}

TEST(SlideEvaluation, PatientsAreTheBootstrapUnitsAndOneClassHasNoAuc) {
  // Two patients with one slide of each class: resampling patients keeps
  // both classes in every draw, so every replicate has an AUC.
  const std::vector<ScoredSlide> paired = {slide("a1", 1, 0.9, "A"), slide("a2", 0, 0.1, "A"),
                                           slide("b1", 1, 0.8, "B"), slide("b2", 0, 0.3, "B")};
  const SlideEvaluation e = evaluate_slides(paired, {});
  EXPECT_EQ(e.unit, "patient");
  EXPECT_EQ(e.units, 2);
  EXPECT_EQ(e.auc_interval.at("top-mean").samples, 2000);
  EXPECT_DOUBLE_EQ(e.auc_interval.at("top-mean").low, 1.0);
  // Slides drawn one by one often miss a class: fewer replicates have an AUC.
  std::vector<ScoredSlide> unpaired = paired;
  for (auto& s : unpaired) s.patient.clear();
  EXPECT_LT(evaluate_slides(unpaired, {}).auc_interval.at("top-mean").samples, 2000);
  const SlideEvaluation benign_only =
      evaluate_slides({slide("b1", 0, 0.2), slide("b2", 0, 0.6)}, {});
  EXPECT_TRUE(std::isnan(benign_only.metrics.auc));
  EXPECT_TRUE(benign_only.to_json()["auc"].is_null());
  EXPECT_TRUE(benign_only.to_json()["sensitivity"].is_null());
  EXPECT_TRUE(benign_only.to_json()["threshold_from_these_slides"].is_null());
  EXPECT_NE(benign_only.headline().find("AUC n/a (it needs benign and malignant slides)"),
            std::string::npos);
  const SlideEvaluation none = evaluate_slides({}, {});
  EXPECT_TRUE(none.to_json()["auc"].is_null());
  EXPECT_TRUE(none.to_json()["accuracy"].is_null());
}

TEST(SlideEvaluation, TheIntervalCoversTheAucAndNarrowsWithMoreSlides) {
  // Overlapping classes: benign U(0, 0.6), malignant U(0.4, 1).
  auto cohort = [](int per_class) {
    Rng rng(7);
    std::vector<ScoredSlide> slides;
    for (int i = 0; i < per_class; ++i) {
      slides.push_back(slide("b" + std::to_string(i), 0, rng.uniform(0, 0.6)));
      slides.push_back(slide("m" + std::to_string(i), 1, rng.uniform(0.4, 1)));
    }
    return slides;
  };
  const SlideEvaluation small = evaluate_slides(cohort(15), {});
  const SlideEvaluation large = evaluate_slides(cohort(120), {});
  for (const SlideEvaluation* e : {&small, &large}) {
    const Interval& i = e->auc_interval.at("top-mean");
    EXPECT_LT(i.low, e->metrics.auc);
    EXPECT_GT(i.high, e->metrics.auc);
    EXPECT_GT(e->metrics.auc, 0.8);
    EXPECT_LT(e->metrics.auc, 1.0);
  }
  const double small_width =
      small.auc_interval.at("top-mean").high - small.auc_interval.at("top-mean").low;
  const double large_width =
      large.auc_interval.at("top-mean").high - large.auc_interval.at("top-mean").low;
  EXPECT_LT(large_width, 0.6 * small_width);  // about 1/sqrt(8) in theory
  EXPECT_EQ(evaluate_slides(cohort(15), {}).to_json(), small.to_json()) << "deterministic";
}

TEST(SlideEvaluation, WritesTheRocFigureAndTheJson) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot is not installed";
  testing::TempDir dir;
  const SlideEvaluation e = evaluate_slides(
      {slide("m1", 1, 0.7), slide("m2", 1, 0.4), slide("b1", 0, 0.6), slide("b2", 0, 0.2)}, {});
  write_slide_evaluation(e, dir.path());
  EXPECT_EQ(nlohmann::json::parse(read_file(dir / "slide-evaluation.json")), e.to_json());
  const std::string script = read_file(dir / "slide-roc.png.gp");
  EXPECT_NE(script.find("top-mean (chosen) (n = 4, AUC 0.750)"), std::string::npos) << script;
  EXPECT_NE(script.find("area (n = 4, AUC 0.750)"), std::string::npos) << script;
  EXPECT_GT(read_file(dir / "slide-roc.png").size(), 1000u);
}

}  // namespace
}  // namespace histocnn
