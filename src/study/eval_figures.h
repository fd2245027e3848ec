// The figures of an evaluation, as a paper would show them: ROC curves per
// crop, image and patient (each with its own dash and marker, so coinciding
// curves stay visible), and the confusion matrices at threshold 0.5 per crop,
// image and patient (cells coloured by their share of the true class, green
// where right and red where wrong, with a colour bar), and the reliability
// diagram when the report has calibration.
#pragma once

#include <string>
#include <vector>

#include "train/evaluate.h"

namespace histocnn {

// One curve of a ROC figure.
struct RocSeries {
  std::string name;  // the legend's, followed there by its n and AUC
  std::vector<Prediction> predictions;
  std::string style;  // gnuplot's `with` clause, e.g. "lines lw 2 dt 1"
};

// The curve's points with at most `step` between kept neighbours in either
// rate (the first and last always kept): what a figure can show of a curve
// of a million tiles, off the full one by at most `step` anywhere.
std::vector<std::pair<double, double>> thin_roc_curve(
    const std::vector<std::pair<double, double>>& curve, double step);

// <base>.{dat,png,svg} and the scripts: one curve per series that has both
// classes, the chance diagonal; with no such series the figure says
// `why_none`; curves are thinned to steps of 1/2000 (the legend's AUC is
// the exact one). Throws when gnuplot fails; where it is not installed, the scripts alone
// (render_gnuplot).
void write_roc_figure(const std::vector<RocSeries>& series, const std::string& base,
                      const std::string& title, const std::string& why_none);

// Writes <base>.roc.{dat,png,svg}, <base>.confusion.{png,svg}, with more
// than two classes <base>.classes.confusion.{png,svg} (K x K) and
// <base>.classes.roc.{dat,png,svg} (one-vs-rest per image, one curve per
// class), and
// <base>.reliability.{dat,png,svg} (the last with calibration; and the
// gnuplot scripts beside them). Throws when gnuplot fails; where it is not installed, the scripts
// alone (render_gnuplot).
void write_eval_figures(const EvalReport& report, const std::string& base,
                        const std::string& title);

}  // namespace histocnn
