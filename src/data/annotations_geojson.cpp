// QuPath's GeoJSON annotations (File > Export objects as GeoJSON): see
// data/annotations.h for what counts.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/annotation_formats.h"

namespace histocnn::annotation_formats {
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

Region polygon_of(const json& polygon, const std::string& where) {
  require(polygon.is_array() && !polygon.empty(), where + ": a polygon has no rings");
  std::vector<Ring> rings;
  for (const json& ring : polygon) rings.push_back(ring_of(ring, where));
  return region_of(std::move(rings), where);
}

// The feature's class ("" when it has none).
std::string class_of(const json& feature) {
  if (!feature.contains("properties") || !feature["properties"].is_object()) return "";
  const json& p = feature["properties"];
  if (!p.contains("classification")) return "";
  const json& c = p["classification"];
  if (c.is_string()) return c.get<std::string>();
  if (c.is_object() && c.contains("name") && c["name"].is_string())
    return c["name"].get<std::string>();
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
          path +
              ": not GeoJSON annotations (expected a FeatureCollection, as QuPath's File > "
              "Export objects as GeoJSON writes)");
  return doc["features"];
}

void add_feature(Annotations& a, const json& feature, Role role, const std::string& where) {
  require(feature.contains("geometry") && feature["geometry"].is_object() &&
              feature["geometry"].contains("type") && feature["geometry"]["type"].is_string(),
          where + ": no geometry");
  const json& g = feature["geometry"];
  const std::string type = g["type"].get<std::string>();
  require(g.contains("coordinates"), where + ": a " + type + " without coordinates");
  if (type == "Polygon") {
    add_region(a, role, polygon_of(g["coordinates"], where));
  } else if (type == "MultiPolygon") {
    require(g["coordinates"].is_array(), where + ": a MultiPolygon's coordinates are not a list");
    for (const json& polygon : g["coordinates"]) add_region(a, role, polygon_of(polygon, where));
  } else {
    fail(where + ": a " + type + " region (only Polygon and MultiPolygon outline an area)");
  }
}

}  // namespace

Annotations parse_geojson(const std::string& content, const std::string& path,
                          const ClassList& classes) {
  const json doc = json::parse(content, nullptr, false);
  require(!doc.is_discarded(), path +
                                   ": neither JSON nor XML (expected QuPath GeoJSON, ASAP XML or "
                                   "Aperio ImageScope XML annotations)");
  Annotations a;
  a.path = path;
  a.format = "QuPath GeoJSON";
  int index = 0;
  for (const json& feature : features_of(doc, path)) {
    const std::string where = path + " feature " + std::to_string(index++);
    require(feature.is_object(), where + ": not a GeoJSON feature");
    if (is_detection(feature)) continue;
    const Role role = classes.role_of({class_of(feature)});
    if (role == Role::other)
      ++a.ignored;
    else
      add_feature(a, feature, role, where);
  }
  return a;
}

}  // namespace histocnn::annotation_formats
