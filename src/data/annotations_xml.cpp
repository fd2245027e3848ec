// ASAP's, Aperio ImageScope's and Indica Labs HALO's XML annotations: see
// data/annotations.h for what counts. pugixml parses; it never fetches
// external entities.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <pugixml.hpp>
#include <set>

#include "core/error.h"
#include "data/annotation_formats.h"

namespace histocnn::annotation_formats {
namespace {

// The attribute as a finite number; throws naming `where` otherwise.
double number_of(const pugi::xml_node& node, const char* name, const std::string& where) {
  const pugi::xml_attribute attribute = node.attribute(name);
  require(!attribute.empty(), where + ": a <" + node.name() + "> without " + name);
  const std::string text = attribute.value();
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  require(error == std::errc() && end == text.data() + text.size() && std::isfinite(value),
          where + ": " + name + "=\"" + text.substr(0, 40) + "\" is not a number");
  return value;
}

// The ring of the element's `point` children (Coordinate or Vertex), in the
// order their Order attributes give when every point has one.
Ring ring_of(const pugi::xml_node& points, const char* point, const std::string& where) {
  struct Point {
    long long order;
    double x, y;
  };
  std::vector<Point> all;
  bool ordered = true;
  for (const pugi::xml_node& p : points.children(point)) {
    const pugi::xml_attribute order = p.attribute("Order");
    ordered = ordered && !order.empty();
    all.push_back({order.as_llong(), number_of(p, "X", where), number_of(p, "Y", where)});
  }
  if (ordered)
    std::stable_sort(all.begin(), all.end(),
                     [](const Point& a, const Point& b) { return a.order < b.order; });
  Ring r;
  for (const Point& p : all) {
    r.x.push_back(p.x);
    r.y.push_back(p.y);
  }
  return r;
}

// An ASAP annotation's group and the groups above it (nesting stops at
// "None", at a group not listed or at one already seen).
std::vector<std::string> group_chain(std::string group,
                                     const std::map<std::string, std::string>& parent) {
  std::vector<std::string> chain;
  std::set<std::string> seen;
  while (!group.empty() && group != "None" && seen.insert(group).second) {
    chain.push_back(group);
    const auto up = parent.find(group);
    group = up == parent.end() ? "" : up->second;
  }
  return chain;
}

// <ASAP_Annotations><Annotations><Annotation Type PartOfGroup><Coordinates>
// <Coordinate Order X Y>, groups (nested by PartOfGroup) in <AnnotationGroups>.
void read_asap(Annotations& a, const pugi::xml_node& root, const ClassList& classes) {
  const pugi::xml_node list = root.child("Annotations");
  require(!list.empty(), a.path + ": ASAP annotations without <Annotations>");
  std::map<std::string, std::string> parent;
  for (const pugi::xml_node& g : root.child("AnnotationGroups").children())
    parent[g.attribute("Name").value()] = g.attribute("PartOfGroup").value();
  int index = 0;
  for (const pugi::xml_node& n : list.children("Annotation")) {
    std::string where = a.path + " annotation " + std::to_string(index++);
    if (!std::string(n.attribute("Name").value()).empty())
      where += " (" + std::string(n.attribute("Name").value()).substr(0, 40) + ")";
    const Role role = classes.role_of(group_chain(n.attribute("PartOfGroup").value(), parent));
    const std::string type = n.attribute("Type").value();
    if (role == Role::other) {
      ++a.ignored;
    } else if (type == "Dot" || type == "PointSet" || type == "Measurement") {
      ++a.markers;
    } else {
      require(type == "Polygon" || type == "Spline" || type == "Rectangle",
              where + ": Type=\"" + type.substr(0, 40) +
                  "\" (Polygon, Spline and Rectangle outline an area; Dot, PointSet and "
                  "Measurement mark points)");
      add_region(a, role, region_of({ring_of(n.child("Coordinates"), "Coordinate", where)}, where));
    }
  }
}

// The values of an element's <Attributes><Attribute Value="...">.
void add_attribute_values(const pugi::xml_node& node, std::vector<std::string>& names) {
  for (const pugi::xml_node& at : node.child("Attributes").children("Attribute"))
    names.push_back(at.attribute("Value").value());
}

// HALO's regions name their shape (Type="Polygon"): whether `root` is HALO's
// file rather than ImageScope's (whose Types are numbers).
bool is_halo(const pugi::xml_node& root) {
  for (const pugi::xml_node& layer : root.children("Annotation"))
    for (const pugi::xml_node& region : layer.child("Regions").children("Region")) {
      const std::string type = region.attribute("Type").value();
      if (!type.empty() && !std::isdigit(static_cast<unsigned char>(type[0]))) return true;
    }
  return false;
}

// The corners of the rectangle whose opposite corners are the ring's two points.
Ring rectangle_of(const Ring& corners) {
  return {{corners.x[0], corners.x[1], corners.x[1], corners.x[0]},
          {corners.y[0], corners.y[0], corners.y[1], corners.y[1]}};
}

// The ellipse inscribed in that rectangle, as a polygon of 64 vertices (its
// area within 0.2 % of the ellipse's).
Ring ellipse_of(const Ring& corners) {
  const double cx = (corners.x[0] + corners.x[1]) / 2, cy = (corners.y[0] + corners.y[1]) / 2;
  const double rx = std::fabs(corners.x[1] - corners.x[0]) / 2;
  const double ry = std::fabs(corners.y[1] - corners.y[0]) / 2;
  Ring r;
  for (int i = 0; i < 64; ++i) {
    const double t = 2 * M_PI * i / 64;
    r.x.push_back(cx + rx * std::cos(t));
    r.y.push_back(cy + ry * std::sin(t));
  }
  return r;
}

// A HALO region's area from its Type: a Polygon's vertices outline it; a
// Rectangle's and an Ellipse's two vertices are opposite corners of the
// rectangle that encloses the shape; Ruler and Pin mark points (an empty
// ring). Throws naming `where` for any other Type.
Ring halo_area(const std::string& type, Ring vertices, const std::string& where) {
  if (type == "Ruler" || type == "Pin") return {};
  require(type == "Polygon" || type == "Rectangle" || type == "Ellipse",
          where + ": Type=\"" + type.substr(0, 40) +
              "\" (Polygon, Rectangle and Ellipse outline an area; Ruler and Pin mark points)");
  if (type == "Polygon") return vertices;
  require(vertices.x.size() == 2, where + ": " + type + " with " +
                                      std::to_string(vertices.x.size()) +
                                      " vertices (two opposite corners expected)");
  return type == "Rectangle" ? rectangle_of(vertices) : ellipse_of(vertices);
}

// <Annotations><Annotation Name> layers of <Regions><Region Text NegativeROA>
// <Vertices><Vertex X Y> (ImageScope) or <Region Type NegativeROA>
// <Vertices><V X Y> (HALO, whose Types name the shape: halo_area). An
// ImageScope region of fewer than 3 vertices (its ellipses, rulers and arrows
// keep two: what an ellipse's two mean is not documented) outlines no area
// of its own.
void read_layers(Annotations& a, const pugi::xml_node& root, const ClassList& classes, bool halo) {
  int layer_index = 0;
  for (const pugi::xml_node& layer : root.children("Annotation")) {
    std::vector<std::string> layer_names = {layer.attribute("Name").value()};
    add_attribute_values(layer, layer_names);
    int region_index = 0;
    for (const pugi::xml_node& region : layer.child("Regions").children("Region")) {
      const std::string where = a.path + " layer " + std::to_string(layer_index) + " region " +
                                std::to_string(region_index++);
      std::vector<std::string> names = layer_names;
      names.push_back(region.attribute("Text").value());
      add_attribute_values(region, names);
      Role role = classes.role_of(names);
      if (region.attribute("NegativeROA").as_int() == 1)  // cut out of its layer, if malignant
        role = role == Role::malignant ? Role::excluded : Role::other;
      Ring ring = ring_of(region.child("Vertices"), halo ? "V" : "Vertex", where);
      if (halo && role != Role::other)
        ring = halo_area(region.attribute("Type").value(), std::move(ring), where);
      if (role == Role::other)
        ++a.ignored;
      else if (ring.x.size() < 3)
        ++a.markers;
      else
        add_region(a, role, region_of({std::move(ring)}, where));
    }
    ++layer_index;
  }
}

}  // namespace

Annotations parse_xml(const std::string& content, const std::string& path,
                      const ClassList& classes) {
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_buffer(content.data(), content.size());
  require(bool(parsed), path + ": not well-formed XML (" + parsed.description() + " at byte " +
                            std::to_string(parsed.offset) + ")");
  Annotations a;
  a.path = path;
  const pugi::xml_node root = doc.document_element();
  if (std::string(root.name()) == "ASAP_Annotations") {
    a.format = "ASAP XML";
    read_asap(a, root, classes);
  } else if (std::string(root.name()) == "Annotations") {
    const bool halo = is_halo(root);
    a.format = halo ? "HALO XML" : "Aperio ImageScope XML";
    read_layers(a, root, classes, halo);
  } else {
    fail(path +
         ": XML, but neither ASAP's <ASAP_Annotations> nor Aperio ImageScope's or HALO's "
         "<Annotations>");
  }
  return a;
}

}  // namespace histocnn::annotation_formats
