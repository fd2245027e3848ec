#include "data/annotations.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/csv_text.h"

namespace histocnn {
namespace {

using nlohmann::json;

Ring ring_of(const json& points, const std::string& where) {
  require(points.is_array() && points.size() >= 3,
          where + ": a ring needs at least 3 [x, y] points");
  Ring r;
  for (const json& p : points) {
    require(p.is_array() && p.size() >= 2 && p[0].is_number() && p[1].is_number(),
            where + ": a point is not [x, y] numbers");
    r.x.push_back(p[0].get<double>());
    r.y.push_back(p[1].get<double>());
  }
  return r;
}

Region region_of(const json& polygon, const std::string& where) {
  require(polygon.is_array() && !polygon.empty(), where + ": a polygon has no rings");
  Region region;
  for (const json& ring : polygon) region.rings.push_back(ring_of(ring, where));
  const Ring& outer = region.rings.front();
  region.min_x = *std::min_element(outer.x.begin(), outer.x.end());
  region.max_x = *std::max_element(outer.x.begin(), outer.x.end());
  region.min_y = *std::min_element(outer.y.begin(), outer.y.end());
  region.max_y = *std::max_element(outer.y.begin(), outer.y.end());
  return region;
}

// Even-odd crossing test of one ring.
bool inside(const Ring& r, double x, double y) {
  bool in = false;
  for (size_t i = 0, j = r.x.size() - 1; i < r.x.size(); j = i++)
    if ((r.y[i] > y) != (r.y[j] > y) &&
        x < (r.x[j] - r.x[i]) * (y - r.y[i]) / (r.y[j] - r.y[i]) + r.x[i])
      in = !in;
  return in;
}

// The feature's class, lower case ("" when it has none).
std::string class_of(const json& feature) {
  if (!feature.contains("properties") || !feature["properties"].is_object()) return "";
  const json& p = feature["properties"];
  if (!p.contains("classification")) return "";
  const json& c = p["classification"];
  if (c.is_string()) return ascii_lower(c.get<std::string>());
  if (c.is_object() && c.contains("name") && c["name"].is_string())
    return ascii_lower(c["name"].get<std::string>());
  return "";
}

bool is_detection(const json& feature) {
  if (!feature.contains("properties") || !feature["properties"].is_object()) return false;
  const json& p = feature["properties"];
  if (!p.contains("objectType") || !p["objectType"].is_string()) return false;
  const std::string type = p["objectType"].get<std::string>();
  return type == "detection" || type == "cell" || type == "tile";
}

const json& features_of(const json& doc, const std::string& path) {
  if (doc.is_array()) return doc;
  require(doc.is_object() && doc.contains("features") && doc["features"].is_array(),
          path + ": not GeoJSON annotations (expected a FeatureCollection, as QuPath's File > "
                 "Export objects as GeoJSON writes)");
  return doc["features"];
}

}  // namespace

std::vector<std::string> default_annotation_classes() {
  return {"tumor", "tumour", "malignant", "carcinoma", "cancer"};
}

Annotations parse_annotations(const std::string& content, const std::string& path,
                              const std::vector<std::string>& classes) {
  const json doc = json::parse(content, nullptr, false);
  require(!doc.is_discarded(), path + ": not JSON (expected QuPath's GeoJSON annotations)");
  const bool any = std::find(classes.begin(), classes.end(), "any") != classes.end();
  Annotations a;
  a.path = path;
  int index = 0;
  for (const json& feature : features_of(doc, path)) {
    const std::string where = path + " feature " + std::to_string(index++);
    require(feature.is_object(), where + ": not a GeoJSON feature");
    if (is_detection(feature)) continue;
    const std::string name = class_of(feature);
    const bool counted = any || std::find_if(classes.begin(), classes.end(), [&](const auto& c) {
                                  return ascii_lower(c) == name;
                                }) != classes.end();
    if (!counted) {
      ++a.ignored;
      continue;
    }
    require(feature.contains("geometry") && feature["geometry"].is_object() &&
                feature["geometry"].contains("type") && feature["geometry"]["type"].is_string(),
            where + ": no geometry");
    const json& g = feature["geometry"];
    const std::string type = g["type"].get<std::string>();
    require(g.contains("coordinates"), where + ": a " + type + " without coordinates");
    if (type == "Polygon") {
      a.malignant.push_back(region_of(g["coordinates"], where));
    } else if (type == "MultiPolygon") {
      require(g["coordinates"].is_array(), where + ": a MultiPolygon's coordinates are not a list");
      for (const json& polygon : g["coordinates"]) a.malignant.push_back(region_of(polygon, where));
    } else {
      fail(where + ": a " + type + " region (only Polygon and MultiPolygon outline an area)");
    }
  }
  return a;
}

Annotations read_annotations(const std::string& path, const std::vector<std::string>& classes) {
  std::error_code ec;
  require(std::filesystem::is_regular_file(path, ec), path + ": no such annotation file");
  return parse_annotations(read_file(path, size_t(256) << 20), path, classes);
}

bool Annotations::malignant_at(double x, double y) const {
  for (const Region& r : malignant) {
    if (x < r.min_x || x > r.max_x || y < r.min_y || y > r.max_y) continue;
    bool in = false;  // inside the outer ring and not in a hole: odd rings around the point
    for (const Ring& ring : r.rings) in ^= inside(ring, x, y);
    if (in) return true;
  }
  return false;
}

double Annotations::malignant_fraction(double x, double y, double width, double height) const {
  constexpr int kSide = 8;
  int hits = 0;
  for (int j = 0; j < kSide; ++j)
    for (int i = 0; i < kSide; ++i)
      hits += malignant_at(x + (i + 0.5) * width / kSide, y + (j + 0.5) * height / kSide);
  return double(hits) / (kSide * kSide);
}

}  // namespace histocnn
