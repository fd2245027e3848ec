#include "slide/slide_mil.h"

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "slide/mil_cohort.h"
#include "slide/mil_outputs.h"

namespace histocnn {
namespace {
namespace fs = std::filesystem;

constexpr int kTopAttentionTiles = 5;
constexpr const char* kAttentionFiles[] = {"attention.csv", "attention.png", "attention.png.gp",
                                           "attention-overlay.png"};

// The tiles the model rested its call on, the most attended first.
nlohmann::json top_attention(const MilBag& bag, const std::vector<double>& attention) {
  std::vector<size_t> order(attention.size());
  std::iota(order.begin(), order.end(), size_t(0));
  const size_t top = std::min(order.size(), size_t(kTopAttentionTiles));
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(top), order.end(),
                    [&](size_t a, size_t b) { return attention[a] > attention[b]; });
  nlohmann::json tiles = nlohmann::json::array();
  for (size_t k = 0; k < top; ++k) {
    const int64_t* c = &bag.tiles.coords[order[k] * 4];
    tiles.push_back({{"x", c[0]},
                     {"y", c[1]},
                     {"width", c[2]},
                     {"height", c[3]},
                     {"attention", attention[order[k]]},
                     {"p_malignant", bag.tiles.p_malignant[order[k]]}});
  }
  return tiles;
}

}  // namespace

SlideMil SlideMil::load(const std::string& path) {
  SlideMil m;
  m.path = path;
  try {
    m.model = load_attention_mil(path, &m.trained);
  } catch (const Error& e) {  // the file names itself; say which flag gave it
    fail(std::string("--mil ") + e.what());
  }
  if (m.trained.is_object() && m.trained.contains("min_focus") &&
      m.trained["min_focus"].is_number())
    m.min_focus = m.trained["min_focus"].get<double>();
  return m;
}

std::string SlideMil::check_features(int width, bool tta) const {
  require(width == model.features, "--mil " + path + ": reads tile features " +
                                       std::to_string(model.features) +
                                       " wide; the tile models give " + std::to_string(width) +
                                       " (it was trained on another tile model's features)");
  if (!trained.is_object() || !trained.contains("feature_tta") ||
      !trained["feature_tta"].is_boolean() || trained["feature_tta"].get<bool>() == tta)
    return "";
  return std::string("--mil ") + path + ": trained on features " +
         (tta ? "of single views, now averaged over 8 (--tta)"
              : "averaged over 8 views (--tta), now of single views") +
         "; its P may shift (score with" + (tta ? "out" : "") + " --tta to match)";
}

bool apply_slide_mil(const SlideMil* mil, const std::string& folder, nlohmann::json& summary) {
  const bool had = summary.contains("mil") || summary.contains("p_mil");
  summary.erase("mil");
  summary.erase("p_mil");
  if (!mil) {
    if (had)
      for (const char* name : kAttentionFiles) fs::remove(fs::path(folder) / name);
    return had;
  }
  MilBag bag = read_mil_bag(folder, mil->min_focus);
  bag.summary = summary;  // the slide's size and scale, for the map
  nlohmann::json about = {
      {"model", mil->path}, {"tiles", bag.tiles.rows}, {"min_focus", mil->min_focus}};
  if (bag.tiles.rows == 0) {  // nothing to attend to: no answer, said so
    summary["p_mil"] = nullptr;
    summary["mil"] = about;
    return true;
  }
  const AttentionMil::Output out = mil->model.forward(bag.tiles.features.data(), bag.tiles.rows);
  write_attention(folder, "attention", bag, out.attention, out.p_malignant);
  about["top_tiles"] = top_attention(bag, out.attention);
  summary["p_mil"] = out.p_malignant;
  summary["mil"] = about;
  return true;
}

}  // namespace histocnn
