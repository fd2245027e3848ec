#include "slide/mil_outputs.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/parallel_for.h"
#include "data/image.h"
#include "slide/slide_outputs.h"

namespace histocnn {
namespace {
namespace fs = std::filesystem;

std::string six_decimals(double v) {
  char text[32] = "";
  if (std::isfinite(v)) std::snprintf(text, sizeof text, "%.6f", v);
  return text;
}

std::string prediction_row(const MilBag& b, double p, const std::string& fold) {
  const char* label = b.label < 0 ? "" : b.label ? "malignant" : "benign";
  return b.slide + "," + b.patient + "," + label + "," + fold + "," + std::to_string(b.tiles.rows) +
         "," + six_decimals(p) + "," + summary_cell(b.summary, "p_top_mean", "%.6f") + "," +
         summary_cell(b.summary, "p_max", "%.6f") + "\n";
}

std::string attention_rows(const MilBag& b, const std::vector<double>& attention) {
  std::string rows = "x,y,width,height,attention,p_malignant\n";
  for (size_t t = 0; t < attention.size(); ++t) {
    const int64_t* c = &b.tiles.coords[t * 4];
    char line[160];
    std::snprintf(line, sizeof line, "%lld,%lld,%lld,%lld,%.6g,%.6f\n", (long long)c[0],
                  (long long)c[1], (long long)c[2], (long long)c[3], attention[t],
                  double(b.tiles.p_malignant[t]));
    rows += line;
  }
  return rows;
}

// The slide's tissue mask as a quiet background: tissue light grey, glass
// white, pen ink mid grey.
Image tissue_background(const Image& mask) {
  Image out = mask;
  for (uint8_t& v : out.rgb) v = v == 255 ? 225 : v == 0 ? 255 : 190;
  return out;
}

// <folder>/<name>.png, where the slide's folder allows it.
void render_attention_map(const std::string& folder, const std::string& name, const MilBag& b,
                          const std::vector<double>& attention, double p) {
  const fs::path tissue = fs::path(b.folder) / "tissue.png";
  const nlohmann::json& s = b.summary;
  if (!fs::exists(tissue) || !s.is_object() || !s.contains("width") || !s.contains("mpp")) return;
  const Image mask = load_image(tissue.string());
  const double downsample_x = s["width"].get<double>() / mask.width;
  const double downsample_y = s["height"].get<double>() / mask.height;
  // Each tile's percentile of attention within the slide, as CLAM draws
  // them: the weights span orders of magnitude, and a linear scale showed
  // one or two tiles in colour and the rest alike.
  std::vector<size_t> order(attention.size());
  for (size_t t = 0; t < order.size(); ++t) order[t] = t;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t c) { return attention[a] < attention[c]; });
  std::vector<TileScore> percentile(attention.size());
  for (size_t r = 0; r < order.size(); ++r)
    percentile[order[r]].p_malignant = order.size() > 1 ? double(r) / double(order.size() - 1) : 1;
  std::vector<Tile> tiles;
  for (size_t t = 0; t < attention.size(); ++t) {
    const int64_t* c = &b.tiles.coords[t * 4];
    tiles.push_back({c[0], c[1], c[2], c[3], 1.0f, 0, 0});
  }
  char title[320];
  std::snprintf(title, sizeof title, "%s: attention, %lld tiles; P(malignant) %.3f",
                b.slide.c_str(), (long long)b.tiles.rows, p);
  render_heatmap(
      folder,
      heatmap_overlay(tissue_background(mask), downsample_x, downsample_y, tiles, percentile),
      downsample_x * s["mpp"][0].get<double>() / 1000,
      downsample_y * s["mpp"][1].get<double>() / 1000, title, name,
      "attention, percentile within the slide");
}

}  // namespace

void write_attention(const std::string& folder, const std::string& name, const MilBag& bag,
                     const std::vector<double>& attention, double p) {
  require(attention.size() == size_t(bag.tiles.rows), "mil outputs: one attention per tile");
  if (attention.empty()) return;
  write_file_atomically(folder + "/" + name + ".csv", attention_rows(bag, attention));
  render_attention_map(folder, name, bag, attention, p);
}

void write_mil_outputs(const std::string& output, const std::vector<MilBag>& bags,
                       const MilCrossValidation& scores, int threads) {
  require(scores.p.size() == bags.size() && scores.attention.size() == bags.size(),
          "mil outputs: one score per slide");
  const std::string folder = output + "/attention";
  make_directories(folder);
  parallel_for(bags.size(), threads, [&](size_t i) {
    write_attention(folder, bags[i].slide, bags[i], scores.attention[i], scores.p[i]);
  });
  std::string csv = "slide,patient,label,fold,tiles,p_mil,p_top_mean,p_max\n";
  for (size_t i = 0; i < bags.size(); ++i)
    csv += prediction_row(bags[i], scores.p[i],
                          scores.fold.empty() ? "" : std::to_string(scores.fold[i]));
  write_file_atomically(output + "/mil-predictions.csv", csv);
}

}  // namespace histocnn
