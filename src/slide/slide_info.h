// What `histocnn slide` will make of a slide, read from its header alone
// (milliseconds a slide, no pixel decoded): its format and reader, size,
// pyramid and scale, and, given a model's scale, the tile grid (and, on
// request, the tiles on tissue, from its thumbnail). A cohort of
// hundreds of slides is checked this way before hours of scoring
// (`histocnn slide-info`).
//
// Contract: inspect_slide never throws for a slide it cannot use; it records
// why in `problems` (what would make `histocnn slide` fail on it: a file it
// cannot open, no scale, a tile that does not fit) and, in `warnings`, what
// would make it slow (a pyramid without a level near the model's scale).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/slide.h"
#include "slide/tiling.h"

namespace histocnn {

struct SlideInspection {
  double mpp = 0;  // overrides the slides' microns per pixel (--mpp); 0: as recorded
  SlideReader reader = SlideReader::automatic;
  // The model's microns per network pixel and input; 0: no model, no grid.
  double model_mpp_x = 0, model_mpp_y = 0;
  int net_width = 0, net_height = 0;
  // With a model: also read the thumbnail and find the tissue, as `histocnn
  // slide` does with its defaults (a second or so a slide with a pyramid),
  // to count the tiles it would score.
  bool tissue = false;
};

struct SlideInfo {
  std::string path, name;  // name: its output folder's (data/slide.h)
  std::string format, reader, reader_note;
  int64_t width = 0, height = 0;
  double mpp_x = 0, mpp_y = 0;  // 0: not recorded
  std::vector<SlideLevel> levels;
  uint64_t bytes = 0;
  std::optional<TileGrid> grid;  // with a model's scale
  // How many times the pixels the model needs each tile is read at (1 when a
  // level matches the model's scale; 16 when the nearest finer level is 4x
  // finer on each side).
  double read_excess = 0;
  // With SlideInspection::tissue: the tiles on tissue, and how long reading
  // the thumbnail took (what a slide without a pyramid costs).
  std::optional<int64_t> tissue_tiles;
  double thumbnail_seconds = 0;
  std::vector<std::string> problems, warnings;
  bool ready() const { return problems.empty(); }
};

SlideInfo inspect_slide(const std::string& path, const SlideInspection& options);

// A read beyond this many times the pixels the model needs is flagged.
constexpr double kSlowReadExcess = 4.0;

nlohmann::json slide_info_json(const SlideInfo& info);
// A few lines of plain text: the slide, its scale and pyramid, the tile
// grid, then each problem, warning and reader note on its own line.
std::string slide_info_text(const SlideInfo& info);

}  // namespace histocnn
