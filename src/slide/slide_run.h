// One slide end to end: open, find the tissue, tile it at the model's scale,
// score the tiles (resuming where a previous run stopped), write the outputs
// (slide/slide_outputs.h) into <output>/<slide name>/.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/run_lock.h"
#include "data/annotations.h"
#include "data/slide.h"
#include "data/tissue.h"
#include "slide/tile_scorer.h"
#include "slide/tiling.h"
#include "train/checkpoint.h"
#include "train/metrics.h"

namespace histocnn {

struct SlideMil;

struct SlideOptions {
  std::string output;            // results go to output/<slide file name without extension>/
  double mpp = 0;                // the slide's microns per pixel (0: as the file records)
  double mpp_model = 0;          // the model's microns per network pixel (0: as recorded)
  double tissue_threshold = -1;  // saturation; < 0: Otsu's (data/tissue.h)
  double min_tissue = 0.5;       // tiles with less tissue than this are not scored
  bool pen_filter = true;        // pen strokes are not tissue (data/pen_ink.h)
  // Tiles less sharp than this (data/focus.h) are scored and kept in
  // tiles.csv but left out of the slide's statistics, maps and evaluations.
  double min_focus = 0;
  int thumbnail_side = 2048;  // the thumbnail's long side: tissue mask and heatmap
  // Whether gnuplot draws the maps (heatmap.png, ...); false where it is not
  // installed: each map's overlay (heatmap-overlay.png, ...) and the script
  // that draws it later (heatmap.png.gp), and a re-run with gnuplot draws
  // them without scoring again.
  bool maps_drawn = true;
  int batch = 64;
  int readers = 2;
  SlideReader reader = SlideReader::automatic;  // --reader (data/slide.h)
  bool tta = false;
  bool progress = true;  // a progress line on stderr when it is a terminal
  bool restart = false;  // score again instead of continuing a previous run
  int top_k = 10;
  int explain = 0;        // Grad-CAM figures of this many most malignant tiles (explain/)
  bool features = false;  // features.safetensors: each tile's features (slide/tile_features.h)
  // A slide-level model applied to those features once the slide is done
  // (slide/slide_mil.h); requires features. Null: none (and an earlier
  // run's p_mil is removed).
  const SlideMil* mil = nullptr;
  std::vector<std::string> model_paths;  // recorded: a re-run must use the same model
  // The slide's region annotations to check its tiles against (slide/
  // tile_truth.h; null: none); benign_without_annotations: no file, but the
  // slide's label says benign, so every tile is.
  const Annotations* annotations = nullptr;
  bool benign_without_annotations = false;
  // Called once the slide is done (its maps drawn: UndrawnSlide::draw, on
  // its thread) with its tissue tiles, each one's P and annotated truth, and
  // the slide's microns per level-0 pixel (when either of the two above is
  // set): a cohort pools them (slide/tile_evaluation.h,
  // slide/lesion_evaluation.h).
  std::function<void(const std::vector<Tile>&, const std::vector<Prediction>&, double)>
      on_annotated_tiles;
};

// Everything known before the first tile is scored: the slide, its tile
// grid at the model's scale, thumbnail, tissue mask and tissue tiles, and the
// time each took.
struct PreparedSlide {
  std::unique_ptr<Slide> slide;
  TileGrid grid;
  Thumbnail thumbnail;
  TissueMask mask;
  std::vector<Tile> tiles;
  nlohmann::json times = nlohmann::json::object();
};
// Square millimetres of pen ink left out of the slide's tissue.
double pen_ink_mm2(const PreparedSlide& p);

PreparedSlide prepare_slide(const std::string& slide_path, const ModelFile& model,
                            const SlideOptions& options);
// The same for tiles of width x height pixels at mpp_x x mpp_y microns per
// pixel, without a model (`histocnn tiles` exports such tiles).
PreparedSlide prepare_slide(const std::string& slide_path, double mpp_x, double mpp_y, int width,
                            int height, const SlideOptions& options);

// The slide's stains mapped to the model's when it was trained on
// stain-normalised images (estimated once, by the model's method, from 64 of
// its tissue tiles at the resolution they are read); else null.
std::unique_ptr<StainMapping> stain_mapping(const PreparedSlide& prepared, const ModelFile& model);

// The folder a slide's results go to.
std::string slide_output_folder(const SlideOptions& options, const std::string& slide_path);

// A slide whose tiles are scored and whose summary is complete but for its
// maps: draw() writes tiles.geojson, heatmap.png (grades.png) and then the
// summary.json that marks the slide finished. A cohort draws one slide's
// maps on another thread while the next slide is scored (cli/cmd_slide.cpp):
// drawing is one core's work and the model is not needed for it. Until
// draw() returns, the slide's folder stays locked (core/run_lock.h).
struct UndrawnSlide {
  struct Maps {  // what the maps are drawn from
    PreparedSlide prepared;
    std::vector<TileScore> scores;
    std::vector<std::string> classes;
  };
  std::string folder;
  nlohmann::json summary;    // complete but for times.outputs_s
  std::optional<Maps> maps;  // none: interrupted, or a previous run's maps stand
  bool write_summary = false;
  // SlideOptions::on_annotated_tiles with its arguments, or empty: called
  // once the maps are written, on draw()'s thread, so a cohort pools only
  // the slides that are done.
  std::function<void()> on_drawn;
  std::optional<RunLock> lock;

  bool interrupted() const { return summary.value("interrupted", false); }
  // Draws the maps, writes summary.json (when anything in it changed) and
  // returns it; an interrupted slide's summary is returned as it is.
  // Releases the folder's lock. Call once, on any one thread.
  nlohmann::json draw();
};

// Scores one slide with `members` (compiled from `models` with a batch of at
// least options.batch), draws its maps and returns its summary.json. When
// *stop is set between batches, returns early with "interrupted": true and
// the scores so far kept for the next run.
nlohmann::json score_slide(const std::string& slide_path, const std::vector<ModelFile>& models,
                           const std::vector<TrainingStep*>& members, const SlideOptions& options,
                           const std::atomic<bool>* stop = nullptr);
// The same for a slide prepared already (prepare_slide(slide_path,
// models.front(), options), which reads and writes nothing of the slide's
// outputs): a cohort prepares the next slide while this one is scored.
nlohmann::json score_slide(const std::string& slide_path, PreparedSlide prepared,
                           const std::vector<ModelFile>& models,
                           const std::vector<TrainingStep*>& members, const SlideOptions& options,
                           const std::atomic<bool>* stop = nullptr);
// The same up to the maps: everything that needs the model (the tiles'
// scores and features, Grad-CAM, the slide model) is done, the maps are not.
UndrawnSlide score_slide_tiles(const std::string& slide_path, PreparedSlide prepared,
                               const std::vector<ModelFile>& models,
                               const std::vector<TrainingStep*>& members,
                               const SlideOptions& options,
                               const std::atomic<bool>* stop = nullptr);

}  // namespace histocnn
