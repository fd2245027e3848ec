// What `histocnn slide` writes per slide, from the tiles and their scores:
//   tiles.csv      x,y,width,height (level-0 pixels),level,width_um,height_um,
//                  tissue,focus (data/focus.h),p_malignant[,member_sd][,p_<class>... for a model
//                  of more than two classes] — one row per scored tile,
//                  appended batch by batch (the resume point)
//   tiles.geojson  the tiles as QuPath detections (File > Import objects),
//                  classified Malignant/Benign at 0.5 (a grade model: by
//                  their most probable class), P(malignant) and each
//                  class's P as measurements
//   heatmap.png    the thumbnail with P(malignant) overlaid, colour scale,
//                  title and scale bar (heatmap.png.gp: the gnuplot script)
//   grades.png     more than two classes: each tile in its most probable
//                  class's colour, with a key of the classes' tissue shares
//   tissue.png     the tissue mask (white = tissue) on the thumbnail's grid
//   summary.json   tissue area, malignant area fraction, P statistics, the
//                  top-k tiles, time per stage; with more than two classes
//                  each class's share of the scored tissue (its argmax)
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/image.h"
#include "slide/tile_scorer.h"
#include "slide/tiling.h"
#include "study/colour_scale.h"

namespace histocnn {

// A slide summary's number as a CSV cell in printf `format`; "" when the key
// is missing or not a finite number (a failed slide, one without tissue, a
// NaN: null in a reused summary.json). slides.csv and mil-predictions.csv.
std::string summary_cell(const nlohmann::json& summary, const char* key, const char* format);

// `classes`: the model's class names (columns only for more than two).
std::string tiles_csv_header(bool ensemble, const std::vector<std::string>& classes = {});
std::string tile_row(const Tile& tile, const TileGrid& grid, const TileScore& score, bool ensemble);
// The scores of the first rows of `path` (written by tile_row for these
// tiles, in order). Requires: every row names the tile at its position
// (checked: an error names the file and the row).
std::vector<TileScore> read_tile_scores(const std::string& path, const std::vector<Tile>& tiles,
                                        bool ensemble,
                                        const std::vector<std::string>& classes = {});

// The scored tiles (scores.size() of them) as a GeoJSON FeatureCollection;
// with more than two `classes` each tile is classified by its most probable
// class and carries every class's P as a measurement.
void write_tiles_geojson(const std::string& path, const std::vector<Tile>& tiles,
                         const std::vector<TileScore>& scores,
                         const std::vector<std::string>& classes = {});

// Statistics of the scored tiles: count, mean, max, quantiles of P, the mean
// P of the top_k most malignant (p_top_mean; at least one tile), the
// malignant area fraction at 0.5 (tissue-weighted) and the top_k tiles.
nlohmann::json score_statistics(const std::vector<Tile>& tiles,
                                const std::vector<TileScore>& scores, const TileGrid& grid,
                                int top_k, const std::vector<std::string>& classes = {});

// The focus of the scored tiles (data/focus.h): median, 5th and 95th
// percentiles, and with min_focus > 0 how many tiles fall below it and what
// fraction of the scored tissue they hold (tissue-weighted), as
// focus_median, focus_p05, focus_p95, min_focus, out_of_focus_tiles and
// out_of_focus_fraction. Empty (no keys) without tiles.
nlohmann::json focus_statistics(const std::vector<Tile>& tiles,
                                const std::vector<TileScore>& scores, double min_focus);
// Removes the tiles (and their scores) whose focus is below min_focus: they
// stay in tiles.csv but out of everything computed from it.
void keep_in_focus(std::vector<Tile>& tiles, std::vector<TileScore>& scores, double min_focus);

// The thumbnail with every scored tile blended in its colour (alpha 0.55).
Image heatmap_overlay(const Image& thumbnail, double downsample_x, double downsample_y,
                      const std::vector<Tile>& tiles, const std::vector<TileScore>& scores);
// heatmap.png in `folder`: the overlay (saved as heatmap-overlay.png,
// area-reduced to the map's 1000-pixel width when wider) in millimetres with
// the colour bar (0-1, `label`), `title` and a scale bar; `name` instead of
// "heatmap" names the files.
void render_heatmap(const std::string& folder, const Image& overlay, double mm_per_pixel_x,
                    double mm_per_pixel_y, const std::string& title,
                    const std::string& name = "heatmap", const std::string& label = "P(malignant)");

// A grade model's tiles: the class of highest probability (-1 for a tile
// without class probabilities).
int tile_class(const TileScore& score);
// The thumbnail with every scored tile blended in its class's colour
// (class_colour); tiles without classes are left as they are.
Image class_overlay(const Image& thumbnail, double downsample_x, double downsample_y,
                    const std::vector<Tile>& tiles, const std::vector<TileScore>& scores);
// grades.png in `folder`: the class overlay (saved as grades-overlay.png,
// reduced as the heatmap's) in millimetres with a scale bar and a key naming each class in its
// colour with its share of the tissue. Requires: one share per class.
void render_class_map(const std::string& folder, const Image& overlay, double mm_per_pixel_x,
                      double mm_per_pixel_y, const std::string& title,
                      const std::vector<std::string>& classes, const std::vector<double>& shares);

}  // namespace histocnn
