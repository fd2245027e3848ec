#include "slide/slide_outputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "study/colour_scale.h"
#include "study/gnuplot.h"
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

}  // namespace

std::string tiles_csv_header(bool ensemble, const std::vector<std::string>& classes) {
  std::string header = std::string("x,y,width,height,level,width_um,height_um,tissue,p_malignant") +
                       (ensemble ? ",member_sd" : "");
  if (classes.size() > 2)
    for (const auto& name : classes) header += "," + csv_field("p_" + name);
  return header;
}

std::string tile_row(const Tile& t, const TileGrid& g, const TileScore& s, bool ensemble) {
  char row[256];
  int n = std::snprintf(row, sizeof row, "%lld,%lld,%lld,%lld,%d,%.2f,%.2f,%.3f,%.6f",
                        (long long)t.x, (long long)t.y, (long long)t.width, (long long)t.height,
                        g.level, g.tile_um_x, g.tile_um_y, t.tissue, s.p_malignant);
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
          path + ": not this run's tiles.csv (its header differs)");
  const size_t first_class = ensemble ? 10 : 9;
  const size_t columns = first_class + (classes.size() > 2 ? classes.size() : 0);
  while (std::getline(in, line)) {
    const std::vector<double> v = split_numbers(line);
    const size_t i = scores.size();
    require(v.size() == columns && i < tiles.size() && int64_t(v[0]) == tiles[i].x &&
                int64_t(v[1]) == tiles[i].y && v[8] >= 0 && v[8] <= 1,
            path + ": row " + std::to_string(i + 2) +
                " is not the tile the grid puts there (written with other settings?); "
                "--restart scores the slide again");
    scores.push_back({v[8], ensemble ? v[9] : 0.0, {}});
    for (size_t c = first_class; c < columns; ++c) scores.back().classes.push_back(float(v[c]));
  }
  return scores;
}

void write_tiles_geojson(const std::string& path, const std::vector<Tile>& tiles,
                         const std::vector<TileScore>& scores) {
  // Streamed feature by feature: a slide can have a million tiles, and a
  // JSON tree of them would cost ~1 KB each.
  AtomicFileWriter out(path);
  out.write("{\"type\":\"FeatureCollection\",\"features\":[");
  for (size_t i = 0; i < scores.size(); ++i) {
    const Tile& t = tiles[i];
    const long long x0 = t.x, y0 = t.y, x1 = t.x + t.width, y1 = t.y + t.height;
    const bool malignant = scores[i].p_malignant >= 0.5;
    char spread[48] = "";
    if (scores[i].member_sd > 0)
      std::snprintf(spread, sizeof spread, ",\"Ensemble spread\":%.6f", scores[i].member_sd);
    char feature[640];
    std::snprintf(
        feature, sizeof feature,
        "%s\n{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
        "[[[%lld,%lld],[%lld,%lld],[%lld,%lld],[%lld,%lld],[%lld,%lld]]]},\"properties\":{"
        "\"objectType\":\"detection\",\"classification\":{\"name\":\"%s\",\"color\":%s},"
        "\"measurements\":{\"P(malignant)\":%.6f,\"Tissue fraction\":%.3f%s}}}",
        i ? "," : "", x0, y0, x1, y0, x1, y1, x0, y1, x0, y0, malignant ? "Malignant" : "Benign",
        malignant ? "[200,0,0]" : "[0,0,200]", scores[i].p_malignant, t.tissue, spread);
    out.write(feature);
  }
  out.write("\n]}\n");
  out.commit();
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
  Image out = thumbnail;
  constexpr double kAlpha = 0.55;
  for (size_t i = 0; i < scores.size(); ++i) {
    uint8_t c[3];
    heatmap_colour(scores[i].p_malignant, c);
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

void render_heatmap(const std::string& folder, const Image& overlay, double mm_x, double mm_y,
                    const std::string& title) {
  const std::string image = (std::filesystem::path(folder) / "heatmap-overlay.png").string();
  save_image(image, overlay);
  const double width = overlay.width * mm_x, height = overlay.height * mm_y;
  // A scale bar of a round length near a fifth of the width.
  double bar = std::pow(10.0, std::floor(std::log10(width / 5)));
  if (bar * 5 <= width / 5)
    bar *= 5;
  else if (bar * 2 <= width / 5)
    bar *= 2;
  char bar_label[32];
  std::snprintf(bar_label, sizeof bar_label, bar >= 1 ? "%g mm" : "%g µm",
                bar >= 1 ? bar : bar * 1000);
  const std::string palette = heatmap_palette();
  std::ostringstream gp;
  gp << "set title \"" << gnuplot_text(title) << "\" noenhanced\n"
     << "set size ratio -1\nset xrange [0:" << width << "]\nset yrange [" << height
     << ":0]\nset xlabel 'mm'\nset ylabel 'mm'\nset tics out nomirror\n"
     << "set palette defined (" << palette << ")\nset cbrange [0:1]\n"
     << "set cblabel 'P(malignant)'\nset colorbox\n"
     << "set arrow 1 from " << width * 0.04 << "," << height * 0.95 << " to " << width * 0.04 + bar
     << "," << height * 0.95 << " nohead lw 5 lc rgb 'black' front\n"
     << "set label 1 '" << bar_label << "' at " << width * 0.04 + bar / 2 << ","
     << height * 0.95 - height * 0.02 << " center front\n"
     << "plot '" << gnuplot_path(image) << "' binary filetype=png flipy dx=" << mm_x
     << " dy=" << mm_y << " with rgbimage notitle, "
     << "'+' using (NaN):(NaN):(0.5) with points lc palette notitle\n";
  const int px_width = 1000;
  const int px_height = std::clamp(int(px_width * height / width) + 60, 300, 1600);
  render_gnuplot((std::filesystem::path(folder) / "heatmap").string(), gp.str(), px_width,
                 px_height, false);
}

}  // namespace histocnn
