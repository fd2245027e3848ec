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
// and attention (empty: no tiles).
void write_mil_outputs(const std::string& output, const std::vector<MilBag>& bags,
                       const MilCrossValidation& scores);

}  // namespace histocnn
