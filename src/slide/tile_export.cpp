#include "slide/tile_export.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"
#include "core/rng.h"
#include "data/image.h"
#include "data/slide.h"

namespace histocnn {
namespace {

// FNV-1a: a seed from the slide's name that no library version changes.
uint64_t name_hash(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (const unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Tiles are read and written in groups of this many: bounded memory, and
// the group's images are encoded in parallel.
constexpr size_t kGroup = 32;

void write_group(const PreparedSlide& p, const std::vector<Tile>& chosen, size_t first,
                 const std::vector<std::string>& paths) {
  const size_t count = std::min(kGroup, chosen.size() - first);
  const std::vector<Image> images = read_tiles(*p.slide, p.grid, chosen, first, count);
  std::vector<std::string> errors(count);
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < count; ++i) {
    try {
      save_image(paths[first + i], images[i]);
    } catch (const Error& e) {
      errors[i] = e.what();
    }
  }
  for (const std::string& e : errors) require(e.empty(), e);
}

}  // namespace

int tile_truth_class(double malignant_fraction, double purity) {
  constexpr double kSlack = 1e-9;  // 1 - 0.9 is 0.09999999999999998 in doubles
  if (malignant_fraction >= purity - kSlack) return 1;
  if (malignant_fraction <= 1 - purity + kSlack) return 0;
  return -1;
}

std::vector<size_t> draw_in_order(const std::vector<size_t>& indices, int n, uint64_t seed) {
  if (n <= 0 || size_t(n) >= indices.size()) return indices;
  std::vector<size_t> order(indices.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Rng rng(seed);
  for (size_t i = 0; i < size_t(n); ++i)  // a partial Fisher-Yates shuffle
    std::swap(order[i], order[i + size_t(rng.below(uint64_t(order.size() - i)))]);
  order.resize(size_t(n));
  std::sort(order.begin(), order.end());
  std::vector<size_t> drawn;
  for (size_t i : order) drawn.push_back(indices[i]);
  return drawn;
}

bool tile_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

std::string tile_name_stem(const std::string& slide_path) {
  std::string stem = slide_name(slide_path);
  std::replace_if(
      stem.begin(), stem.end(), [](char c) { return !tile_name_char(c); }, '-');
  return stem;
}

ExportedSlide export_slide_tiles(const std::string& slide_path, const SlideTruth& truth,
                                 const TileExportOptions& o, const SlideOptions& reading,
                                 const std::string& folder) {
  require(o.purity > 0.5 && o.purity <= 1, "--purity: above 0.5 and at most 1");
  require(o.size >= 16 && o.mpp > 0, "export_slide_tiles: a tile of at least 16 pixels");
  require(truth.annotations || truth.benign,
          "export_slide_tiles: " + slide_path + " has neither annotations nor a benign label");
  const PreparedSlide p = prepare_slide(slide_path, o.mpp, o.mpp, o.size, o.size, reading);
  ExportedSlide e;
  e.slide = slide_path;
  e.patient = truth.patient;
  e.tissue_tiles = int(p.tiles.size());
  e.pen_ink_mm2 = pen_ink_mm2(p);
  std::vector<size_t> by_class[2];
  for (size_t i = 0; i < p.tiles.size(); ++i) {
    const Tile& t = p.tiles[i];
    const int k =
        truth.annotations
            ? tile_truth_class(truth.annotations->malignant_fraction(
                                   double(t.x), double(t.y), double(t.width), double(t.height)),
                               o.purity)
            : 0;
    if (k < 0) {
      ++e.border;
      continue;
    }
    (k ? e.malignant : e.benign)++;
    by_class[k].push_back(i);
  }
  const std::string stem = tile_name_stem(slide_path);
  const uint64_t seed = o.seed ^ name_hash(stem);
  std::vector<std::pair<size_t, int>> chosen_index;  // (tile, class)
  for (int k = 0; k < 2; ++k) {
    const auto drawn = draw_in_order(by_class[k], o.max_per_class, seed + uint64_t(k));
    for (size_t i : drawn) chosen_index.push_back({i, k});
    (k ? e.written_malignant : e.written_benign) = int(drawn.size());
  }
  std::sort(chosen_index.begin(), chosen_index.end());  // grid order: reads share regions
  std::vector<Tile> chosen;
  std::vector<std::string> paths;
  for (const auto& [i, k] : chosen_index) {
    const Tile& t = p.tiles[i];
    const std::string name =
        o.prefix + "_" + stem + "_" + std::to_string(t.column) + "_" + std::to_string(t.row);
    chosen.push_back(t);
    paths.push_back((std::filesystem::path(folder) / (name + "." + o.format)).string());
    e.rows.push_back({name, truth.patient, k, "", {}});
  }
  for (size_t first = 0; first < chosen.size(); first += kGroup)
    write_group(p, chosen, first, paths);
  return e;
}

nlohmann::json ExportedSlide::to_json() const {
  return {{"slide", slide},
          {"patient", patient},
          {"tissue_tiles", tissue_tiles},
          {"malignant", malignant},
          {"benign", benign},
          {"border", border},
          {"written_malignant", written_malignant},
          {"written_benign", written_benign},
          {"pen_ink_mm2", pen_ink_mm2}};
}

}  // namespace histocnn
