// A pathologist's region annotations on a slide: the truth a slide's tiles
// are checked against (`histocnn slide --annotations DIR`). Four formats,
// told apart by their content, all in level-0 pixels:
//   - QuPath GeoJSON (File > Export objects as GeoJSON): a FeatureCollection
//     (or a bare array of Features) of Polygon and MultiPolygon geometries
//     with holes, each classified in properties.classification.name
//     (data/annotations_geojson.cpp);
//   - ASAP XML, as CAMELYON16/17 ship their lesion annotations: <Annotation
//     Type="Polygon|Rectangle|Spline" PartOfGroup="..."> with <Coordinate
//     X Y> points; the class is the group (data/annotations_xml.cpp);
//   - Aperio ImageScope XML: layers (<Annotation Name="...">) of <Region>s
//     with <Vertex X Y> points; a region's class is its Text, its layer's
//     Name or the layer's Description, whichever is listed; NegativeROA="1"
//     marks a region cut out of its layer (data/annotations_xml.cpp);
//   - Indica Labs HALO XML (.annotations): the same layers, regions of
//     Type="Polygon|Rectangle|Ellipse" with <V X Y> points (a rectangle's or
//     an ellipse's two points are opposite corners of the rectangle around
//     it), Ruler and Pin markers; the class is the layer's Name.
//
// Which regions are malignant: those whose class is one of `classes` (any
// case; by default tumor, tumour, malignant, carcinoma, cancer, metastases,
// metastasis and CAMELYON16's groups _0 and _1), or every annotation when
// `classes` holds "any". Which are cut out of them: the classes exclusion and
// _2 (CAMELYON16's normal tissue inside a tumour) and ImageScope's negative
// regions of a malignant layer. A point is malignant when it lies in a
// malignant region and in no excluded one. Markers that outline no area
// (ASAP dots and rulers, ImageScope arrows and rulers, HALO rulers and pins)
// and detections (QuPath
// objectType detection, cell, tile: e.g. our own tiles.geojson) are never
// regions.
#pragma once

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
  // Inside the outer ring and in none of its holes.
  bool contains(double x, double y) const;
};

struct Annotations {
  std::string path;
  std::string format;  // "QuPath GeoJSON", "ASAP XML", "Aperio ImageScope XML", "HALO XML"
  std::vector<Region> malignant;  // the regions counted as malignant
  std::vector<Region> excluded;   // cut out of them
  int ignored = 0;                // annotations of other classes (or none)
  int markers = 0;                // of a counted class but no area: dots, rulers, arrows
  // Whether (x, y) lies inside a malignant region and outside every excluded one.
  bool malignant_at(double x, double y) const;
  // Whether (x, y) lies inside an excluded region.
  bool excluded_at(double x, double y) const;
  // The share of the rectangle that is malignant, from 8 x 8 points.
  double malignant_fraction(double x, double y, double width, double height) const;
};

std::vector<std::string> default_annotation_classes();

// Throws naming `path` for anything that is not one of the three formats: not
// JSON or XML, no features or annotations, a shape without numeric
// coordinates, a polygon of fewer than 3 points.
Annotations parse_annotations(const std::string& content, const std::string& path,
                              const std::vector<std::string>& classes);
Annotations read_annotations(const std::string& path, const std::vector<std::string>& classes);

}  // namespace histocnn
