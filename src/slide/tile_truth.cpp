#include "slide/tile_truth.h"

#include <cmath>

#include "core/error.h"
#include "train/metrics.h"

namespace histocnn {

std::vector<Prediction> annotated_tiles(const Annotations* annotations,
                                        const std::vector<Tile>& tiles,
                                        const std::vector<TileScore>& scores) {
  require(scores.size() <= tiles.size(), "annotated_tiles: more scores than tiles");
  std::vector<Prediction> predictions;
  for (size_t i = 0; i < scores.size(); ++i) {
    const Tile& t = tiles[i];
    const bool truth =
        annotations && annotations->malignant_fraction(double(t.x), double(t.y), double(t.width),
                                                       double(t.height)) >= 0.5;
    predictions.push_back({float(scores[i].p_malignant), truth ? 1 : 0});
  }
  return predictions;
}

nlohmann::json annotation_summary(const Annotations* annotations,
                                  const std::vector<Prediction>& predictions) {
  int malignant = 0;
  for (const Prediction& p : predictions) malignant += p.label;
  const Metrics m = compute_metrics(predictions);
  auto rate = [](int hits, int of) {
    return of ? nlohmann::json(double(hits) / of) : nlohmann::json(nullptr);
  };
  return {{"file", annotations ? nlohmann::json(annotations->path) : nlohmann::json(nullptr)},
          {"format", annotations ? nlohmann::json(annotations->format) : nlohmann::json(nullptr)},
          {"regions", annotations ? annotations->malignant.size() : size_t(0)},
          {"excluded_regions", annotations ? annotations->excluded.size() : size_t(0)},
          {"ignored_annotations", annotations ? annotations->ignored : 0},
          {"markers", annotations ? annotations->markers : 0},
          {"tiles", m.count},
          {"malignant_tiles", malignant},
          {"auc", m.count && !std::isnan(m.auc) ? nlohmann::json(m.auc) : nullptr},
          {"sensitivity", rate(m.tp, m.tp + m.fn)},
          {"specificity", rate(m.tn, m.tn + m.fp)},
          {"accuracy", m.count ? nlohmann::json(m.accuracy) : nullptr},
          {"confusion", {{"tn", m.tn}, {"fp", m.fp}, {"fn", m.fn}, {"tp", m.tp}}},
          {"truth", annotations ? "a tile is malignant when at least half of it (8 x 8 points) "
                                  "lies in the malignant regions and outside the excluded ones"
                                : "no annotation file and a benign slide label: every tile "
                                  "benign"}};
}

}  // namespace histocnn
