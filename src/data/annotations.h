// A pathologist's region annotations on a slide, as QuPath exports them
// (File > Export objects as GeoJSON): a FeatureCollection (or a bare array of
// Features) of Polygon and MultiPolygon geometries in level-0 pixels, each
// classified in properties.classification.name. They are the truth a slide's
// tiles are checked against (`histocnn slide --annotations DIR`).
//
// Which regions are malignant: those whose class is one of `classes` (any
// case; by default tumor, tumour, malignant, carcinoma, cancer), or every
// annotation when `classes` holds "any". Detections (objectType "detection",
// "cell", "tile": e.g. our own tiles.geojson) are never annotations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace histocnn {

struct Ring {
  std::vector<double> x, y;  // closed or not; the last edge joins last to first
};

// One polygon: an outer ring and its holes (even-odd: a point in a hole is out).
struct Region {
  std::vector<Ring> rings;
  double min_x = 0, min_y = 0, max_x = 0, max_y = 0;  // of the outer ring
};

struct Annotations {
  std::string path;
  std::vector<Region> malignant;  // the regions counted as malignant
  int ignored = 0;                // annotations of other classes (or none)
  // Whether (x, y) lies inside a malignant region.
  bool malignant_at(double x, double y) const;
  // The share of the rectangle inside malignant regions, from 8 x 8 points.
  double malignant_fraction(double x, double y, double width, double height) const;
};

std::vector<std::string> default_annotation_classes();

// Throws naming `path` for anything that is not such GeoJSON: not JSON, no
// features, a geometry that is not a polygon with numeric coordinates, a ring
// of fewer than 3 points.
Annotations parse_annotations(const std::string& content, const std::string& path,
                              const std::vector<std::string>& classes);
Annotations read_annotations(const std::string& path, const std::vector<std::string>& classes);

}  // namespace histocnn
