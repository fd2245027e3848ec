// Lesion-level detection, as CAMELYON16 scored it (FROC): does the heatmap
// find each tumour focus, and at what cost in false alarms per slide?
//
// Lesions: the malignant regions of a slide's annotations, those closer than
// twice `dilation_um` joined into one (CAMELYON16 dilated its masks by 75 um
// and took connected components). A lesion whose longest side is under
// `itc_um` (200 um) is isolated tumour cells: detections in it count neither
// way and it is not in the sensitivity, as in CAMELYON16.
//
// Detections: the tiles' P(malignant) map reduced by greedy non-maximum
// suppression (the most malignant tile first, every tile whose centre lies
// within `nms_um` of it dropped), each kept tile's centre a detection with
// its P, down to `min_p`.
//
// A detection hits a lesion when its point lies in one of the lesion's
// regions (outside the excluded ones) or within `dilation_um` of one's
// outline; a detection that hits no lesion is a false positive. Over a
// cohort, every threshold gives the share of lesions hit and the false
// positives per slide (benign slides too); the FROC score is the mean
// sensitivity at 1/4, 1/2, 1, 2, 4 and 8 false positives per slide, each
// the sensitivity of the lowest threshold at which the false positives per
// slide are at most that many (no interpolation: a step function).
#pragma once

#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/annotations.h"
#include "slide/tiling.h"
#include "train/metrics.h"

namespace histocnn {

struct LesionOptions {
  double dilation_um = 75;
  double itc_um = 200;
  double nms_um = 200;
  double min_p = 0.05;
};

struct Lesion {
  std::vector<size_t> regions;  // indices into Annotations::malignant
  double min_x = 0, min_y = 0, max_x = 0, max_y = 0;
  bool itc = false;
};

// Requires: um_per_pixel > 0 (level-0 pixels).
std::vector<Lesion> find_lesions(const Annotations& annotations, double um_per_pixel,
                                 const LesionOptions& options);

struct Detection {
  double x = 0, y = 0;  // level-0 pixels
  float p = 0;
};

// Requires: one prediction per tile, in order.
std::vector<Detection> detect_lesions(const std::vector<Tile>& tiles,
                                      const std::vector<Prediction>& predictions,
                                      double um_per_pixel, const LesionOptions& options);

// The lesion the point hits (its index), -1 for none, -2 for an ITC (ignored).
int lesion_hit(const std::vector<Lesion>& lesions, const Annotations& annotations, double x,
               double y, double tolerance_pixels);

// One slide's part: its lesions (ITCs left out) and its detections, each
// with the lesion it hits (-1: a false positive; ITC hits are dropped).
struct LesionSlide {
  std::string slide;
  int lesions = 0;
  std::vector<std::pair<float, int>> detections;  // (P, lesion or -1)
};

// A slide's part from its tiles; `annotations` null: a slide known benign.
LesionSlide lesion_slide(const std::string& slide, const Annotations* annotations,
                         const std::vector<Tile>& tiles, const std::vector<Prediction>& predictions,
                         double um_per_pixel, const LesionOptions& options);

struct Froc {
  int slides = 0, lesions = 0, detections = 0;
  // (threshold, FP per slide, sensitivity), one point per distinct P from
  // the highest down; before the first, nothing is detected (0, 0).
  std::vector<std::array<double, 3>> curve;
  std::array<double, 6> sensitivity_at{};  // at 1/4, 1/2, 1, 2, 4, 8 FP per slide
  double score = 0;                        // their mean; NaN without lesions
  // Per slide at P >= 0.5: [{slide, lesions, found, false_positives}], the
  // slides whose lesions were missed or whose heatmap raises false alarms.
  nlohmann::json per_slide = nlohmann::json::array();
  LesionOptions options;
  nlohmann::json to_json() const;
  std::string headline() const;
};

Froc evaluate_lesions(const std::vector<LesionSlide>& slides, const LesionOptions& options);

// <folder>/froc.{png,svg} (the curve on a log axis of false positives per
// slide, the six rates marked) and then <folder>/lesion-evaluation.json.
// Throws when gnuplot fails; where it is not installed, the scripts alone (render_gnuplot).
void write_lesion_evaluation(const Froc& froc, const std::string& folder);

}  // namespace histocnn
