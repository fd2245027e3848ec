// `histocnn slide --mil MODEL`: a slide-level attention MIL model (the
// mil.safetensors of `histocnn mil`, slide/mil_cohort.h) applied to every
// slide as it is scored, so a new slide gets its slide-level P in the same
// run as its heatmap. The slide's tile features (features.safetensors, which
// --mil therefore writes) go in; beside the slide's other results come out
//
//   summary.json   "p_mil": the model's P(malignant) of the slide, and "mil":
//                  the model file, the tiles it read, and the tiles it
//                  attended to most (box, attention, P)
//   attention.csv  every tile's box, attention and P (as mil's attention/<slide>.csv)
//   attention.png  the attention on the tissue as each tile's percentile
//
// The model reads the tiles at least as sharp as the --min-focus it was
// trained with (its file records it), as `histocnn mil` did.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "nn/attention_mil.h"

namespace histocnn {

struct SlideMil {
  std::string path;
  AttentionMil model;
  nlohmann::json trained;  // how `histocnn mil` made it
  double min_focus = 0;    // trained.min_focus

  // Throws, naming the file, for anything but a readable attention MIL model.
  static SlideMil load(const std::string& path);
  // Throws (naming --mil and the file) when the tile models give features
  // of another width than the model reads; returns a warning ("" if none)
  // when they are averaged over the 8 transforms (tta) and the model's were
  // not, or the reverse: the same tiles then give features of another spread.
  std::string check_features(int width, bool tta) const;
};

// For a finished slide's folder and its summary: with `mil`, reads the
// slide's features.safetensors, writes attention.csv and attention.png, and
// sets summary's "p_mil" and "mil"; without, removes what an earlier run
// with --mil left (the keys and the files), so a summary never holds
// another run's slide-level answer. Returns whether summary changed.
bool apply_slide_mil(const SlideMil* mil, const std::string& folder, nlohmann::json& summary);

}  // namespace histocnn
