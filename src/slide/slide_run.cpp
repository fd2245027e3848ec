#include "slide/slide_run.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/run_lock.h"
#include "core/stopwatch.h"
#include "data/pen_ink.h"
#include "data/slide.h"
#include "data/tissue.h"
#include "slide/slide_mil.h"
#include "slide/slide_outputs.h"
#include "slide/tile_features.h"
#include "slide/tile_scorer.h"
#include "slide/tile_truth.h"
#include "slide/tiling.h"
#include "study/explanation_figure.h"
#include "train/explain.h"
#include "train/member_prediction.h"

namespace histocnn {
namespace fs = std::filesystem;
namespace {

// Square microns of tissue under one thumbnail pixel.
double um2_per_pixel(const Slide& slide, const Thumbnail& t) {
  return t.downsample_x * slide.mpp_x() * t.downsample_y * slide.mpp_y();
}

// Specks under 0.01 mm^2 are dropped; holes (lumens, tears) under 0.0625
// mm^2 are tissue; pen strokes from kMinPenStrokeUm2 are not — in thumbnail
// pixels of this slide.
TissueOptions tissue_options(const Slide& slide, const Thumbnail& t, const SlideOptions& so) {
  const double um2 = um2_per_pixel(slide, t);
  TissueOptions o;
  o.threshold = so.tissue_threshold;
  o.min_object_pixels = int64_t(1e4 / um2);
  o.max_hole_pixels = int64_t(6.25e4 / um2);
  o.min_ink_pixels = so.pen_filter ? int64_t(std::ceil(kMinPenStrokeUm2 / um2)) : -1;
  return o;
}

// What the scores depend on: a re-run continues only when all of it agrees.
nlohmann::json run_settings(const PreparedSlide& p, const SlideOptions& o) {
  nlohmann::json models = nlohmann::json::array();
  for (const auto& m : o.model_paths)
    models.push_back(
        {{"path", fs::absolute(m).lexically_normal().string()}, {"bytes", fs::file_size(m)}});
  const Slide& s = *p.slide;
  nlohmann::json settings = {{"slide", fs::absolute(s.path()).lexically_normal().string()},
                             {"slide_bytes", slide_bytes(s.path())},
                             {"models", models},
                             {"mpp", {s.mpp_x(), s.mpp_y()}},
                             {"tile_level0", {p.grid.tile_width, p.grid.tile_height}},
                             {"level", p.grid.level},
                             {"tissue_threshold", p.mask.threshold},
                             {"min_tissue", o.min_tissue},
                             {"pen_filter", o.pen_filter},
                             {"thumbnail_side", o.thumbnail_side},
                             {"tta", o.tta},
                             {"tiles", p.tiles.size()}};
  // Only when asked: runs without features continue as they always did.
  if (o.features) settings["features"] = true;
  return settings;
}

// The scores a previous run of the same settings left (none with restart).
std::vector<TileScore> previous_scores(const std::string& folder, const nlohmann::json& settings,
                                       const std::vector<Tile>& tiles, bool ensemble,
                                       const std::vector<std::string>& classes, bool restart) {
  const std::string run = folder + "/run.json", csv = folder + "/tiles.csv";
  if (!restart && fs::exists(run)) {
    const nlohmann::json before = nlohmann::json::parse(read_file(run), nullptr, false);
    for (const auto& [key, value] : settings.items())
      require(before.is_object() && before.contains(key) && before[key] == value,
              folder + ": scored before with another " + key + " (" +
                  (before.is_object() && before.contains(key) ? before[key].dump() : "none") +
                  ", now " + value.dump() + "); --restart scores the slide again");
    repair_torn_last_line(csv);
    if (fs::exists(csv)) return read_tile_scores(csv, tiles, ensemble, classes);
  }
  for (const char* name :
       {"tiles.csv", "summary.json", "tiles.geojson", "grades.png", "grades.png.gp",
        "grades-overlay.png", "features.partial", "features.safetensors", "attention.csv",
        "attention.png", "attention.png.gp", "attention-overlay.png"})
    fs::remove(folder + "/" + name);
  write_file_atomically(run, settings.dump(2) + "\n");
  write_file_atomically(csv, tiles_csv_header(ensemble, classes) + "\n");
  return {};
}

// "\r  1200/38016 tiles  431 tiles/s  1:11 left" on a terminal.
class ProgressLine {
 public:
  ProgressLine(bool shown, size_t total, size_t done)
      : shown_(shown && ::isatty(STDERR_FILENO)), total_(total), start_done_(done) {}
  void update(size_t done) {
    if (!shown_) return;
    const double elapsed = seconds_since(start_);
    const double rate = elapsed > 0 ? double(done - start_done_) / elapsed : 0;
    const int left = rate > 0 ? int(double(total_ - done) / rate) : 0;
    std::fprintf(stderr, "\r  %zu/%zu tiles  %.0f tiles/s  %d:%02d left   ", done, total_, rate,
                 left / 60, left % 60);
    std::fflush(stderr);
  }
  ~ProgressLine() {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  bool shown_;
  size_t total_, start_done_;
  Clock::time_point start_ = Clock::now();
};

nlohmann::json describe(const PreparedSlide& p, const SlideOptions& o) {
  const Slide& s = *p.slide;
  return {{"slide", s.path()},
          {"format", s.format()},
          {"reader", s.reader()},
          {"reader_note", s.reader_note()},
          {"width", s.width()},
          {"height", s.height()},
          {"levels", s.levels().size()},
          {"mpp", {s.mpp_x(), s.mpp_y()}},
          {"models", o.model_paths},
          {"tile_um", {p.grid.tile_um_x, p.grid.tile_um_y}},
          {"tile_level0_pixels", {p.grid.tile_width, p.grid.tile_height}},
          {"read_level", p.grid.level},
          {"tissue_threshold", p.mask.threshold},
          {"tissue_mm2", double(p.mask.tissue_pixels()) * um2_per_pixel(s, p.thumbnail) / 1e6},
          {"pen_filter", o.pen_filter},
          {"pen_ink_mm2", pen_ink_mm2(p)},
          {"min_tissue", o.min_tissue},
          {"tta", o.tta},
          {"top_k", o.top_k},
          {"explain", o.explain},
          {"tiles_on_tissue", p.tiles.size()}};
}

// The summary of a previous run that finished this slide with the same
// settings and the same output options (top_k, explain; its heatmap drawn
// where gnuplot draws the maps now, its script where not): its outputs stand,
// so a re-run (another --slide-score, a cohort's second look) need not draw
// them again. Null when anything differs or is missing; a summary from an
// older histocnn (no "top_k") is redrawn.
nlohmann::json finished_summary(const std::string& folder, size_t tiles, const SlideOptions& o) {
  std::error_code ec;
  for (const char* name :
       {"summary.json", "tiles.geojson", o.maps_drawn ? "heatmap.png" : "heatmap.png.gp"})
    if (!fs::is_regular_file(folder + "/" + name, ec)) return nullptr;
  nlohmann::json s = nlohmann::json::parse(read_file(folder + "/summary.json"), nullptr, false);
  auto holds = [&](const char* key, int64_t value) {  // a hand-edited file may hold anything
    return s.contains(key) && s[key].is_number_integer() && s[key].get<int64_t>() == value;
  };
  const bool same = s.is_object() && !s.contains("interrupted") &&
                    holds("tiles_scored", int64_t(tiles)) && holds("top_k", o.top_k) &&
                    holds("explain", o.explain) && (o.explain == 0 || s.contains("explanations")) &&
                    s.contains("min_focus") && s["min_focus"] == o.min_focus;
  return same ? s : nlohmann::json(nullptr);
}

// tiles.geojson, heatmap.png and (more than two classes) grades.png, titled
// with the statistics already in `summary`.
void draw_maps(const std::string& folder, const UndrawnSlide::Maps& m,
               const nlohmann::json& summary) {
  const PreparedSlide& p = m.prepared;
  write_tiles_geojson(folder + "/tiles.geojson", p.tiles, m.scores, m.classes);
  const Image overlay = heatmap_overlay(p.thumbnail.image, p.thumbnail.downsample_x,
                                        p.thumbnail.downsample_y, p.tiles, m.scores);
  const std::string name = fs::path(p.slide->path()).filename().string();
  char title[512];
  std::snprintf(title, sizeof title, "%s: P(malignant), %zu tiles of %.0f µm; %s", name.c_str(),
                m.scores.size(), p.grid.tile_um_x,
                m.scores.empty() ? "no tissue found"
                                 : ("malignant area " +
                                    std::to_string(int(std::lround(
                                        100 * summary["malignant_area_fraction"].get<double>()))) +
                                    "% at P >= 0.5")
                                       .c_str());
  const double mm_x = p.thumbnail.downsample_x * p.slide->mpp_x() / 1000;
  const double mm_y = p.thumbnail.downsample_y * p.slide->mpp_y() / 1000;
  render_heatmap(folder, overlay, mm_x, mm_y, title);
  if (!summary.contains("class_area_fraction")) return;
  std::vector<double> shares;
  for (const std::string& c : m.classes) shares.push_back(summary["class_area_fraction"][c]);
  std::snprintf(title, sizeof title, "%s: most probable class, %zu tiles of %.0f µm", name.c_str(),
                m.scores.size(), p.grid.tile_um_x);
  render_class_map(folder,
                   class_overlay(p.thumbnail.image, p.thumbnail.downsample_x,
                                 p.thumbnail.downsample_y, p.tiles, m.scores),
                   mm_x, mm_y, title, m.classes, shares);
}

// Grad-CAM of the `count` most malignant tiles: explain/tile-X-Y.gradcam.png
// (and .overlay.png), X, Y the tile's level-0 origin. Returns their names.
nlohmann::json write_tile_explanations(const std::string& folder, const PreparedSlide& p,
                                       const std::vector<TileScore>& scores,
                                       const std::vector<ModelFile>& models,
                                       const StainMapping* stains, int count) {
  std::vector<size_t> order(scores.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const size_t n = std::min(order.size(), size_t(std::max(count, 0)));
  std::partial_sort(order.begin(), order.begin() + long(n), order.end(), [&](size_t a, size_t b) {
    return scores[a].p_malignant > scores[b].p_malignant;
  });
  nlohmann::json files = nlohmann::json::array();
  if (n > 0) make_directories(folder + "/explain");
  for (size_t k = 0; k < n; ++k) {
    const Tile& t = p.tiles[order[k]];
    const Image tile = read_tiles(*p.slide, p.grid, p.tiles, order[k], 1, stains).front();
    // Two classes: where it saw malignant; more (grades): its predicted class.
    const bool binary = models.front().labels.count() == 2;
    const Explanation e =
        explain_image(tile, models, {{0, 0, tile.width, tile.height}}, binary ? 1 : -1);
    const std::string name =
        "explain/tile-" + std::to_string(t.x) + "-" + std::to_string(t.y) + ".gradcam";
    char title[160];
    std::snprintf(title, sizeof title,
                  "tile at (%lld, %lld): where the model saw %s (P(malignant) = %.3f)",
                  (long long)t.x, (long long)t.y, binary ? "malignant" : "its predicted grade",
                  scores[order[k]].p_malignant);
    write_explanation_figure(folder + "/" + name, tile, e, title);
    files.push_back(name + ".png");
  }
  return files;
}

// The focus statistics into the summary; tiles under min_focus (said on
// stderr) out of p.tiles and scores, so no output after tiles.csv sees them.
void set_aside_out_of_focus(const std::string& path, PreparedSlide& p,
                            std::vector<TileScore>& scores, nlohmann::json& summary,
                            double min_focus) {
  const nlohmann::json focus = focus_statistics(p.tiles, scores, min_focus);
  summary.update(focus);
  if (focus.value("out_of_focus_tiles", int64_t(0)) == 0) return;
  std::fprintf(stderr,
               "%s: %lld of %zu tiles out of focus (%.0f%% of the scored tissue; focus < %g): "
               "left out of its statistics and maps, kept in tiles.csv\n",
               path.c_str(), (long long)focus["out_of_focus_tiles"].get<int64_t>(), scores.size(),
               100 * focus["out_of_focus_fraction"].get<double>(), min_focus);
  keep_in_focus(p.tiles, scores, min_focus);
}

}  // namespace

double pen_ink_mm2(const PreparedSlide& p) {
  return double(p.mask.ink_pixels()) * um2_per_pixel(*p.slide, p.thumbnail) / 1e6;
}

PreparedSlide prepare_slide(const std::string& path, const ModelFile& model,
                            const SlideOptions& o) {
  const double mx = o.mpp_model > 0 ? o.mpp_model : model.mpp_x;
  const double my = o.mpp_model > 0 ? o.mpp_model : model.mpp_y;
  return prepare_slide(path, mx, my, model.width, model.height, o);
}

PreparedSlide prepare_slide(const std::string& path, double mpp_x, double mpp_y, int width,
                            int height, const SlideOptions& o) {
  PreparedSlide p;
  auto clock = Clock::now();
  p.slide = open_slide(path, o.mpp, o.reader);
  p.grid = plan_tile_grid(*p.slide, mpp_x, mpp_y, width, height);
  p.times["open_s"] = seconds_since(clock);
  clock = Clock::now();
  p.thumbnail = read_thumbnail(*p.slide, o.thumbnail_side);
  p.times["thumbnail_s"] = seconds_since(clock);
  clock = Clock::now();
  p.mask = detect_tissue(p.thumbnail.image, tissue_options(*p.slide, p.thumbnail, o));
  p.tiles = tissue_tiles(p.grid, p.mask, p.thumbnail.downsample_x, p.thumbnail.downsample_y,
                         o.min_tissue);
  p.times["tissue_s"] = seconds_since(clock);
  return p;
}

std::unique_ptr<StainMapping> stain_mapping(const PreparedSlide& p, const ModelFile& model) {
  if (!model.stain_target || p.tiles.empty()) return nullptr;
  auto m = std::make_unique<StainMapping>();
  // From tissue tiles at the resolution they are scored at: a thumbnail's
  // averaged pixels would understate the stains' concentration range.
  const std::vector<uint8_t> rgb = sample_tile_pixels(*p.slide, p.grid, p.tiles, 64);
  const StainRecipe recipe = model.stain_recipe();
  m->source = estimate_stains_with(recipe.method, rgb.data(), rgb.size() / 3,
                                   p.slide->path() + " (64 of its tissue tiles)");
  m->target = *model.stain_target;
  m->keep_residual = recipe.keep_residual;
  return m;
}

namespace {

// What a reader of features.safetensors needs to place and trust its rows.
std::map<std::string, std::string> tile_feature_metadata(
    const PreparedSlide& p, const SlideOptions& o, const std::vector<TrainingStep*>& members) {
  nlohmann::json widths = nlohmann::json::array();
  for (const TrainingStep* m : members) widths.push_back(m->feature_width());
  const Slide& s = *p.slide;
  return {{"slide", s.path()},
          {"slide_name", slide_name(s.path())},
          {"models", nlohmann::json(o.model_paths).dump()},
          {"member_widths", widths.dump()},
          {"feature", "the input of each member's last dense layer, no dropout" +
                          std::string(o.tta ? ", mean over the 8 dihedral transforms" : "")},
          {"tta", o.tta ? "true" : "false"},
          {"mpp", nlohmann::json({s.mpp_x(), s.mpp_y()}).dump()},
          {"tile_um", nlohmann::json({p.grid.tile_um_x, p.grid.tile_um_y}).dump()},
          {"read_level", std::to_string(p.grid.level)}};
}

}  // namespace

std::string slide_output_folder(const SlideOptions& o, const std::string& slide_path) {
  return (fs::path(o.output) / slide_name(slide_path)).string();
}

nlohmann::json UndrawnSlide::draw() {
  if (maps) {
    const auto clock = Clock::now();
    draw_maps(folder, *maps, summary);
    summary["times"]["outputs_s"] = seconds_since(clock);
    maps.reset();  // the thumbnail and the scores are not needed any more
  }
  if (write_summary) write_file_atomically(folder + "/summary.json", summary.dump(2) + "\n");
  write_summary = false;
  if (on_drawn) on_drawn();
  on_drawn = nullptr;
  lock.reset();
  return summary;
}

nlohmann::json score_slide(const std::string& path, const std::vector<ModelFile>& models,
                           const std::vector<TrainingStep*>& members, const SlideOptions& o,
                           const std::atomic<bool>* stop) {
  return score_slide(path, prepare_slide(path, models.front(), o), models, members, o, stop);
}

nlohmann::json score_slide(const std::string& path, PreparedSlide p,
                           const std::vector<ModelFile>& models,
                           const std::vector<TrainingStep*>& members, const SlideOptions& o,
                           const std::atomic<bool>* stop) {
  return score_slide_tiles(path, std::move(p), models, members, o, stop).draw();
}

namespace {

// This run's annotations and slide model into the summary, never an earlier
// run's; the cohort's pooling of the annotated tiles into on_drawn.
void apply_slide_evidence(const PreparedSlide& p, const std::vector<TileScore>& scores,
                          const SlideOptions& o, UndrawnSlide& u) {
  if (o.annotations || o.benign_without_annotations || u.summary.contains("annotations")) {
    u.summary.erase("annotations");
    if (o.annotations || o.benign_without_annotations) {
      std::vector<Prediction> truths = annotated_tiles(o.annotations, p.tiles, scores);
      u.summary["annotations"] = annotation_summary(o.annotations, truths);
      if (o.on_annotated_tiles)
        u.on_drawn = [pool = o.on_annotated_tiles, tiles = p.tiles, truths = std::move(truths),
                      um = p.grid.tile_um_x / p.grid.tile_width] { pool(tiles, truths, um); };
    }
    u.write_summary = true;
  }
  u.write_summary |= apply_slide_mil(o.mil, u.folder, u.summary);
}

void say_what_is_left_out(const std::string& path, const PreparedSlide& p) {
  if (p.mask.ink_pixels() > 0)
    std::fprintf(stderr,
                 "%s: %.2f mm² of pen ink left out of the tissue (grey in tissue.png; "
                 "--no-pen-filter keeps it)\n",
                 path.c_str(), pen_ink_mm2(p));
  if (p.tiles.empty())
    std::fprintf(stderr, "%s: no tissue found (saturation threshold %.3f): nothing to score\n",
                 path.c_str(), p.mask.threshold);
}

}  // namespace

UndrawnSlide score_slide_tiles(const std::string& path, PreparedSlide p,
                               const std::vector<ModelFile>& models,
                               const std::vector<TrainingStep*>& members, const SlideOptions& o,
                               const std::atomic<bool>* stop) {
  require(!o.mil || o.features, "score_slide: a slide model (mil) reads the tile features");
  const std::string folder = slide_output_folder(o, path);
  const OutputFolder made(folder);  // removed again when this slide fails before writing there
  RunLock lock(folder);
  save_image(folder + "/tissue.png", p.mask.to_image());
  const bool ensemble = models.size() > 1;
  std::vector<TileScore> scores = previous_scores(folder, run_settings(p, o), p.tiles, ensemble,
                                                  models.front().labels.classes, o.restart);
  nlohmann::json summary = describe(p, o);
  summary["times"] = p.times;
  say_what_is_left_out(path, p);
  const std::unique_ptr<StainMapping> stains = stain_mapping(p, models.front());
  ScoringOptions so{o.batch,
                    o.readers,
                    o.tta,
                    models.front().normalization,
                    stains.get(),
                    temperings_of(models),
                    models.front().labels.malignant};
  so.features = o.features;
  std::optional<TileFeatureLog> features;
  if (o.features) features.emplace(folder, summed_feature_width(members), scores.size());
  ProgressLine progress(o.progress, p.tiles.size(), scores.size());
  const ScoringTimes t = score_tiles(
      *p.slide, p.grid, p.tiles, scores.size(), members, so,
      [&](size_t first, const std::vector<TileScore>& batch) {
        if (features) features->append(batch);  // before the resume point
        std::string rows;
        for (size_t i = 0; i < batch.size(); ++i)
          rows += (i ? "\n" : "") + tile_row(p.tiles[first + i], p.grid, batch[i], ensemble);
        append_line_atomically(folder + "/tiles.csv", rows);  // one write: the resume point
        scores.insert(scores.end(), batch.begin(), batch.end());
        progress.update(scores.size());
      },
      stop);
  summary["times"]["scoring"] = {
      {"wall_s", t.wall_s},   {"read_s", t.read_s},
      {"infer_s", t.infer_s}, {"wait_s", t.wait_s},
      {"tiles", t.tiles},     {"tiles_per_s", t.wall_s > 0 ? t.tiles / t.wall_s : 0.0}};
  if (scores.size() < p.tiles.size()) {
    summary["interrupted"] = true;
    summary["tiles_scored"] = scores.size();
    return UndrawnSlide{folder, std::move(summary), std::nullopt, false, nullptr, std::move(lock)};
  }
  if (features) {
    features->finish(p.tiles, scores, tile_feature_metadata(p, o, members));
    summary["features"] = fs::path(features->path()).filename().string();
  }
  set_aside_out_of_focus(path, p, scores, summary, o.min_focus);
  // Every tile scored before: the outputs may stand as they are.
  nlohmann::json done = t.tiles == 0 ? finished_summary(folder, scores.size(), o) : nullptr;
  const bool redraw = done.is_null();
  if (redraw) {
    summary.update(
        score_statistics(p.tiles, scores, p.grid, o.top_k, models.front().labels.classes));
    if (o.explain > 0)
      summary["explanations"] =
          write_tile_explanations(folder, p, scores, models, stains.get(), o.explain);
    done = summary;
  }
  UndrawnSlide u{folder, std::move(done), std::nullopt, redraw, nullptr, std::move(lock)};
  apply_slide_evidence(p, scores, o, u);
  if (redraw)
    u.maps = UndrawnSlide::Maps{std::move(p), std::move(scores), models.front().labels.classes};
  return u;
}

}  // namespace histocnn
