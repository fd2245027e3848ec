// What `histocnn mil` writes for a cohort's slides (slide/mil_cohort.h):
//
//   mil-predictions.csv       slide, patient, label, fold, tiles, p_mil, and the
//                             slide's fixed scores p_top_mean, p_max
//   attention/<slide>.csv     every tile's box (level-0 pixels), attention and P
//   attention/<slide>.png     the attention on the slide's tissue (its tissue.png
//                             from `histocnn slide`) as each tile's percentile
//                             within the slide, with colour bar, title and scale bar
//                             (where the slide's folder has tissue.png and its
//                             summary.json the size and microns per pixel)
#pragma once

#include <string>
#include <vector>

#include "slide/mil_cohort.h"

namespace histocnn {

// scores: per bag, its P (NaN: no tiles), fold (empty: not cross-validated)
// and attention (empty: no tiles). The slides' attention files are written
// `threads` at a time (each map is a gnuplot run, ~0.4 s); an error is the
// first slide's by name, whatever the timing.
void write_mil_outputs(const std::string& output, const std::vector<MilBag>& bags,
                       const MilCrossValidation& scores, int threads = 1);
// One slide's <folder>/<name>.csv and <name>.png (as attention/<slide>.*
// above; nothing for a slide without tiles). Requires: one attention per tile.
void write_attention(const std::string& folder, const std::string& name, const MilBag& bag,
                     const std::vector<double>& attention, double p);

}  // namespace histocnn
