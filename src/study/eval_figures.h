// The figures of an evaluation, as a paper would show them: ROC curves per
// crop, image and patient (each with its own dash and marker, so coinciding
// curves stay visible), and the confusion matrices at threshold 0.5 per crop,
// image and patient (cells coloured by their share of the true class, green
// where right and red where wrong, with a colour bar), and the reliability
// diagram when the report has calibration.
#pragma once

#include <string>

#include "train/evaluate.h"

namespace histocnn {

// Writes <base>.roc.{dat,png,svg}, <base>.confusion.{png,svg}, with more
// than two classes <base>.classes.confusion.{png,svg} (K x K) and
// <base>.classes.roc.{dat,png,svg} (one-vs-rest per image, one curve per
// class), and
// <base>.reliability.{dat,png,svg} (the last with calibration; and the
// gnuplot scripts beside them). Throws when gnuplot is missing or fails.
void write_eval_figures(const EvalReport& report, const std::string& base,
                        const std::string& title);

}  // namespace histocnn
