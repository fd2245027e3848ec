#include "slide/slide_outputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <numeric>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "study/colour_scale.h"
#include "study/gnuplot.h"
#include "study/report_tables.h"
#include "train/evaluate.h"

namespace histocnn {
namespace {

std::vector<double> split_numbers(const std::string& line) {
  std::vector<double> values;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, ',');) {
    char* end = nullptr;
    values.push_back(std::strtod(field.c_str(), &end));
    if (end == field.c_str() || *end != '\0') return {};
  }
  return values;
}

// The thumbnail with every scored tile blended in `colour_of`'s colour
// (alpha 0.55); a tile it returns false for is left as it is.
Image blend_tiles(const Image& thumbnail, double downsample_x, double downsample_y,
                  const std::vector<Tile>& tiles, const std::vector<TileScore>& scores,
                  const std::function<bool(const TileScore&, uint8_t[3])>& colour_of) {
  Image out = thumbnail;
  constexpr double kAlpha = 0.55;
  for (size_t i = 0; i < scores.size(); ++i) {
    uint8_t c[3];
    if (!colour_of(scores[i], c)) continue;
    const Tile& t = tiles[i];
    const int x0 = std::max(0, int(std::lround(t.x / downsample_x)));
    const int y0 = std::max(0, int(std::lround(t.y / downsample_y)));
    const int x1 = std::min(out.width, int(std::lround((t.x + t.width) / downsample_x)));
    const int y1 = std::min(out.height, int(std::lround((t.y + t.height) / downsample_y)));
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        for (int k = 0; k < 3; ++k) {
          uint8_t& v = out.row(y)[3 * x + k];
          v = uint8_t(std::lround((1 - kAlpha) * v + kAlpha * c[k]));
        }
  }
  return out;
}

// A map's title, axes in millimetres and a scale bar of a round length near
// a fifth of its width.
std::string map_axes(const Image& overlay, double mm_x, double mm_y, const std::string& title) {
  const double width = overlay.width * mm_x, height = overlay.height * mm_y;
  double bar = std::pow(10.0, std::floor(std::log10(width / 5)));
  if (bar * 5 <= width / 5)
    bar *= 5;
  else if (bar * 2 <= width / 5)
    bar *= 2;
  char bar_label[32];
  std::snprintf(bar_label, sizeof bar_label, bar >= 1 ? "%g mm" : "%g µm",
                bar >= 1 ? bar : bar * 1000);
  std::ostringstream gp;
  gp << "set title \"" << gnuplot_text(title) << "\" noenhanced\n"
     << "set size ratio -1\nset xrange [0:" << width << "]\nset yrange [" << height
     << ":0]\nset xlabel 'mm'\nset ylabel 'mm'\nset tics out nomirror\n"
     << "set arrow 1 from " << width * 0.04 << "," << height * 0.95 << " to " << width * 0.04 + bar
     << "," << height * 0.95 << " nohead lw 5 lc rgb 'black' front\n"
     << "set label 1 '" << bar_label << "' at " << width * 0.04 + bar / 2 << ","
     << height * 0.95 - height * 0.02 << " center front\n";
  return gp.str();
}

// The plot clause drawing an overlay PNG in millimetres.
std::string map_image(const std::string& image, double mm_x, double mm_y) {
  std::ostringstream clause;
  clause << "'" << gnuplot_path(image) << "' binary filetype=png flipy dx=" << mm_x
         << " dy=" << mm_y << " with rgbimage notitle";
  return clause.str();
}

constexpr int kMapWidthPixels = 1000;  // the rendered map's width

// Renders a map script to <base>.png, kMapWidthPixels wide and as tall as the
// slide's aspect asks (300..1600).
void render_map(const std::string& base, const std::string& script, const Image& overlay,
                double mm_x, double mm_y) {
  const double width = overlay.width * mm_x, height = overlay.height * mm_y;
  const int px_width = kMapWidthPixels;
  const int px_height = std::clamp(int(px_width * height / width) + 60, 300, 1600);
  render_gnuplot(base, script, px_width, px_height, false);
}

// The overlay as a map draws it: area-reduced to the map's width in pixels
// when wider. gnuplot draws every image pixel as a rectangle, so a
// 2048-pixel thumbnail took three times as long to render as one of the
// map's own width, for detail the 1000-pixel map cannot show
// (docs/design/slides.md).
struct MapImage {
  Image image;
  double mm_x, mm_y;  // millimetres per pixel of `image`
};
MapImage map_sized(const Image& overlay, double mm_x, double mm_y) {
  if (overlay.width <= kMapWidthPixels) return {overlay, mm_x, mm_y};
  const int width = kMapWidthPixels;
  const int height = std::max(1, int(std::lround(double(overlay.height) * width / overlay.width)));
  return {resize_area(overlay, width, height), mm_x * overlay.width / width,
          mm_y * overlay.height / height};
}

// A tile's QuPath classification: Malignant/Benign at P 0.5, or, for a
// grade model, its most probable class in that class's colour (each class's
// P then added to `measurements`).
std::string classification(const TileScore& s, const std::vector<std::string>& classes,
                           std::string& measurements) {
  const int k = classes.size() > 2 && s.classes.size() == classes.size() ? tile_class(s) : -1;
  if (k < 0)
    return s.p_malignant >= 0.5 ? R"({"name":"Malignant","color":[200,0,0]})"
                                : R"({"name":"Benign","color":[0,0,200]})";
  for (size_t c = 0; c < classes.size(); ++c)
    measurements +=
        "," + nlohmann::json("P(" + classes[c] + ")").dump() + ":" + fixed(s.classes[c], 6);
  uint8_t rgb[3];
  class_colour(k, rgb);
  return "{\"name\":" + nlohmann::json(classes[size_t(k)]).dump() + ",\"color\":[" +
         std::to_string(rgb[0]) + "," + std::to_string(rgb[1]) + "," + std::to_string(rgb[2]) +
         "]}";
}

}  // namespace

std::string tiles_csv_header(bool ensemble, const std::vector<std::string>& classes) {
  std::string header =
      std::string("x,y,width,height,level,width_um,height_um,tissue,focus,p_malignant") +
      (ensemble ? ",member_sd" : "");
  if (classes.size() > 2)
    for (const auto& name : classes) header += "," + csv_field("p_" + name);
  return header;
}

std::string summary_cell(const nlohmann::json& s, const char* key, const char* format) {
  if (!s.is_object() || !s.contains(key) || !s[key].is_number()) return "";
  const double v = s[key].get<double>();
  if (!std::isfinite(v)) return "";
  char text[48];
  std::snprintf(text, sizeof text, format, v);
  return text;
}

std::string tile_row(const Tile& t, const TileGrid& g, const TileScore& s, bool ensemble) {
  char row[256];
  int n =
      std::snprintf(row, sizeof row, "%lld,%lld,%lld,%lld,%d,%.2f,%.2f,%.3f,%.1f,%.6f",
                    (long long)t.x, (long long)t.y, (long long)t.width, (long long)t.height,
                    g.level, g.tile_um_x, g.tile_um_y, t.tissue, double(s.focus), s.p_malignant);
  if (ensemble) std::snprintf(row + n, sizeof row - size_t(n), ",%.6f", s.member_sd);
  std::string line = row;
  for (const float p : s.classes) {
    char number[24];
    std::snprintf(number, sizeof number, ",%.6f", p);
    line += number;
  }
  return line;
}

std::vector<TileScore> read_tile_scores(const std::string& path, const std::vector<Tile>& tiles,
                                        bool ensemble, const std::vector<std::string>& classes) {
  std::vector<TileScore> scores;
  std::stringstream in(read_file(path));
  std::string line;
  require(std::getline(in, line) && line == tiles_csv_header(ensemble, classes),
          path +
              ": not this run's tiles.csv (its header differs: another model, or an older "
              "histocnn without the focus column); --restart scores the slide again");
  constexpr size_t kFocus = 8, kP = 9, kMemberSd = 10;  // columns
  const size_t first_class = ensemble ? kMemberSd + 1 : kP + 1;
  const size_t columns = first_class + (classes.size() > 2 ? classes.size() : 0);
  while (std::getline(in, line)) {
    const std::vector<double> v = split_numbers(line);
    const size_t i = scores.size();
    require(v.size() == columns && i < tiles.size() && int64_t(v[0]) == tiles[i].x &&
                int64_t(v[1]) == tiles[i].y && v[kP] >= 0 && v[kP] <= 1 && v[kFocus] >= 0,
            path + ": row " + std::to_string(i + 2) +
                " is not the tile the grid puts there (written with other settings?); "
                "--restart scores the slide again");
    scores.push_back({v[kP], ensemble ? v[kMemberSd] : 0.0, float(v[kFocus]), {}, {}});
    for (size_t c = first_class; c < columns; ++c) scores.back().classes.push_back(float(v[c]));
  }
  return scores;
}

void write_tiles_geojson(const std::string& path, const std::vector<Tile>& tiles,
                         const std::vector<TileScore>& scores,
                         const std::vector<std::string>& classes) {
  // Streamed feature by feature: a slide can have a million tiles, and a
  // JSON tree of them would cost ~1 KB each.
  AtomicFileWriter out(path);
  out.write("{\"type\":\"FeatureCollection\",\"features\":[");
  for (size_t i = 0; i < scores.size(); ++i) {
    const Tile& t = tiles[i];
    const TileScore& s = scores[i];
    const long long x0 = t.x, y0 = t.y, x1 = t.x + t.width, y1 = t.y + t.height;
    char geometry[256];
    std::snprintf(geometry, sizeof geometry,
                  "{\"type\":\"Polygon\",\"coordinates\":[[[%lld,%lld],[%lld,%lld],[%lld,%lld],"
                  "[%lld,%lld],[%lld,%lld]]]}",
                  x0, y0, x1, y0, x1, y1, x0, y1, x0, y0);
    std::string measurements = "\"P(malignant)\":" + fixed(s.p_malignant, 6) +
                               ",\"Tissue fraction\":" + fixed(t.tissue, 3) +
                               ",\"Focus\":" + fixed(s.focus, 1);
    if (s.member_sd > 0) measurements += ",\"Ensemble spread\":" + fixed(s.member_sd, 6);
    out.write(std::string(i ? "," : "") + "\n{\"type\":\"Feature\",\"geometry\":" + geometry +
              ",\"properties\":{\"objectType\":\"detection\",\"classification\":" +
              classification(s, classes, measurements) + ",\"measurements\":{" + measurements +
              "}}}");
  }
  out.write("\n]}\n");
  out.commit();
}

nlohmann::json focus_statistics(const std::vector<Tile>& tiles,
                                const std::vector<TileScore>& scores, double min_focus) {
  if (scores.empty()) return nlohmann::json::object();
  std::vector<double> focus;
  double tissue = 0, blurred = 0;
  int64_t below = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    focus.push_back(scores[i].focus);
    tissue += tiles[i].tissue;
    if (scores[i].focus < min_focus) {
      ++below;
      blurred += tiles[i].tissue;
    }
  }
  std::sort(focus.begin(), focus.end());
  auto at = [&](double q) { return focus[size_t(std::lround(q * double(focus.size() - 1)))]; };
  return {{"focus_median", at(0.5)},
          {"focus_p05", at(0.05)},
          {"focus_p95", at(0.95)},
          {"min_focus", min_focus},
          {"out_of_focus_tiles", below},
          {"out_of_focus_fraction", tissue > 0 ? blurred / tissue : 0.0}};
}

void keep_in_focus(std::vector<Tile>& tiles, std::vector<TileScore>& scores, double min_focus) {
  size_t kept = 0;
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i].focus >= min_focus) {
      tiles[kept] = tiles[i];
      scores[kept++] = std::move(scores[i]);
    }
  tiles.resize(kept);
  scores.resize(kept);
}

nlohmann::json score_statistics(const std::vector<Tile>& tiles,
                                const std::vector<TileScore>& scores, const TileGrid& grid,
                                int top_k, const std::vector<std::string>& classes) {
  nlohmann::json s = {{"tiles_scored", scores.size()}};
  if (scores.empty()) return s;
  std::vector<double> p(scores.size());
  double tissue = 0, malignant = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    p[i] = scores[i].p_malignant;
    tissue += tiles[i].tissue;
    if (p[i] >= 0.5) malignant += tiles[i].tissue;
  }
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  std::vector<double> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  auto quantile = [&](double q) {  // linear interpolation (numpy's default)
    const double at = q * double(sorted.size() - 1);
    const size_t lo = size_t(at);
    return sorted[lo] +
           (at - double(lo)) * (sorted[std::min(lo + 1, sorted.size() - 1)] - sorted[lo]);
  };
  s["malignant_area_fraction"] = malignant / tissue;
  if (classes.size() > 2) {  // each class's share of the tissue, by the tiles' argmax
    std::vector<double> area(classes.size(), 0.0);
    for (size_t i = 0; i < scores.size(); ++i) {
      const auto& c = scores[i].classes;
      if (c.size() != classes.size()) continue;
      area[size_t(std::max_element(c.begin(), c.end()) - c.begin())] += tiles[i].tissue;
    }
    nlohmann::json shares = nlohmann::json::object();
    for (size_t k = 0; k < classes.size(); ++k) shares[classes[k]] = area[k] / tissue;
    s["class_area_fraction"] = shares;
  }
  s["scored_tissue_mm2"] = tissue * grid.tile_um_x * grid.tile_um_y / 1e6;
  s["p_mean"] = std::accumulate(p.begin(), p.end(), 0.0) / double(p.size());
  s["p_max"] = sorted.back();
  // The slide score top-mean (slide/slide_evaluation.h): at least one tile.
  const size_t top_n = std::clamp<size_t>(size_t(std::max(top_k, 1)), 1, sorted.size());
  s["p_top_mean"] = std::accumulate(sorted.end() - long(top_n), sorted.end(), 0.0) / double(top_n);
  s["p_quantiles"] = {{"0.1", quantile(0.1)},
                      {"0.25", quantile(0.25)},
                      {"0.5", quantile(0.5)},
                      {"0.75", quantile(0.75)},
                      {"0.9", quantile(0.9)}};
  nlohmann::json top = nlohmann::json::array();
  for (size_t k = 0; k < order.size() && int(k) < top_k; ++k) {
    const Tile& t = tiles[order[k]];
    top.push_back({{"x", t.x},
                   {"y", t.y},
                   {"width", t.width},
                   {"height", t.height},
                   {"p_malignant", p[order[k]]}});
  }
  s["top_tiles"] = top;
  return s;
}

Image heatmap_overlay(const Image& thumbnail, double downsample_x, double downsample_y,
                      const std::vector<Tile>& tiles, const std::vector<TileScore>& scores) {
  return blend_tiles(thumbnail, downsample_x, downsample_y, tiles, scores,
                     [](const TileScore& s, uint8_t c[3]) {
                       heatmap_colour(s.p_malignant, c);
                       return true;
                     });
}

int tile_class(const TileScore& s) {
  if (s.classes.empty()) return -1;
  return int(std::max_element(s.classes.begin(), s.classes.end()) - s.classes.begin());
}

Image class_overlay(const Image& thumbnail, double downsample_x, double downsample_y,
                    const std::vector<Tile>& tiles, const std::vector<TileScore>& scores) {
  return blend_tiles(thumbnail, downsample_x, downsample_y, tiles, scores,
                     [](const TileScore& s, uint8_t c[3]) {
                       if (tile_class(s) < 0) return false;
                       class_colour(tile_class(s), c);
                       return true;
                     });
}

void render_heatmap(const std::string& folder, const Image& overlay, double mm_x, double mm_y,
                    const std::string& title, const std::string& name, const std::string& label) {
  const std::string image = (std::filesystem::path(folder) / (name + "-overlay.png")).string();
  const MapImage m = map_sized(overlay, mm_x, mm_y);
  save_image(image, m.image);
  std::ostringstream gp;
  gp << map_axes(m.image, m.mm_x, m.mm_y, title) << "set palette defined (" << heatmap_palette()
     << ")\nset cbrange [0:1]\nset cblabel \"" << gnuplot_text(label) << "\"\nset colorbox\n"
     << "plot " << map_image(image, m.mm_x, m.mm_y)
     << ", '+' using (NaN):(NaN):(0.5) with points lc palette notitle\n";
  render_map((std::filesystem::path(folder) / name).string(), gp.str(), m.image, m.mm_x, m.mm_y);
}

void render_class_map(const std::string& folder, const Image& overlay, double mm_x, double mm_y,
                      const std::string& title, const std::vector<std::string>& classes,
                      const std::vector<double>& shares) {
  require(shares.size() == classes.size(), "render_class_map: one share per class");
  const std::string image = (std::filesystem::path(folder) / "grades-overlay.png").string();
  const MapImage m = map_sized(overlay, mm_x, mm_y);
  save_image(image, m.image);
  std::ostringstream gp;
  gp << map_axes(m.image, m.mm_x, m.mm_y, title) << "unset colorbox\n"
     << "set key outside right top vertical Left reverse noenhanced title 'share of tissue'\n"
     << "plot " << map_image(image, m.mm_x, m.mm_y);
  // The key: one invisible box per class in its colour.
  for (size_t k = 0; k < classes.size(); ++k) {
    char share[32];
    std::snprintf(share, sizeof share, " (%.0f%%)", 100 * shares[k]);
    gp << ", NaN with boxes fill solid 1.0 lc rgb '" << class_colour_hex(int(k)) << "' title \""
       << gnuplot_text(classes[k]) << share << "\"";
  }
  gp << "\n";
  render_map((std::filesystem::path(folder) / "grades").string(), gp.str(), m.image, m.mm_x,
             m.mm_y);
}

}  // namespace histocnn
