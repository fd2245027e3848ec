// OME-XML's pixel size (data/ome_xml.h). pugixml parses; it never fetches
// external entities.
#include "data/ome_xml.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <pugixml.hpp>
#include <string_view>

namespace histocnn {
namespace {

// An element's name without its namespace prefix ("ome:Pixels" -> "Pixels").
std::string_view local_name(const pugi::xml_node& node) {
  const std::string_view name = node.name();
  const size_t colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child_named(const pugi::xml_node& parent, std::string_view name) {
  for (const pugi::xml_node& child : parent.children())
    if (local_name(child) == name) return child;
  return {};
}

// Microns in one `unit` of OME's UnitsLength; 0 for a unit that is not a
// length one can scan at (pixel, reference frame, light years...).
double microns_per(std::string_view unit) {
  struct Unit {
    const char* symbol;
    double microns;
  };
  static constexpr Unit kUnits[] = {
      {"m", 1e6},   {"cm", 1e4},   {"mm", 1e3},        {"\xC2\xB5m", 1},  // U+00B5 micro sign
      {"um", 1},    {"nm", 1e-3},  {"\xCE\xBCm", 1},                      // U+03BC Greek mu
      {"pm", 1e-6}, {"in", 25400}, {"\xC3\x85", 1e-4},                    // U+00C5 angstrom
  };
  for (const Unit& u : kUnits)
    if (unit == u.symbol) return u.microns;
  return 0;
}

// PhysicalSize<axis> of `pixels` in microns; 0 when absent or not usable.
double physical_size(const pugi::xml_node& pixels, const char* axis) {
  const std::string size_name = std::string("PhysicalSize") + axis;
  const pugi::xml_attribute size = pixels.attribute(size_name.c_str());
  if (size.empty()) return 0;
  const std::string_view text = size.value();
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value) ||
      value <= 0)
    return 0;
  const pugi::xml_attribute unit = pixels.attribute((size_name + "Unit").c_str());
  const double microns = value * microns_per(unit.empty() ? "\xC2\xB5m" : unit.value());
  return std::isfinite(microns) ? microns : 0;
}

// Whether the image's planes start at IFD 0 (TiffData's IFD, 0 by default).
bool stored_from_first_ifd(const pugi::xml_node& pixels) {
  for (const pugi::xml_node& child : pixels.children())
    if (local_name(child) == "TiffData") return child.attribute("IFD").as_llong(0) == 0;
  return false;
}

}  // namespace

OmePixelSize ome_pixel_size(const std::string& description, int64_t width, int64_t height) {
  OmePixelSize out;
  if (description.find("<OME") == std::string::npos &&
      description.find(":OME") == std::string::npos)
    return out;  // cheap: Aperio's and scanners' descriptions are not XML at all
  pugi::xml_document document;
  if (!document.load_buffer(description.data(), description.size(), pugi::parse_default,
                            pugi::encoding_utf8))
    return out;
  const pugi::xml_node ome = document.document_element();
  if (local_name(ome) != "OME") return out;
  out.is_ome = true;
  pugi::xml_node first, from_ifd0, of_size;
  for (const pugi::xml_node& image : ome.children()) {
    if (local_name(image) != "Image") continue;
    const pugi::xml_node pixels = child_named(image, "Pixels");
    if (!pixels) continue;
    if (!first) first = pixels;
    if (!from_ifd0 && stored_from_first_ifd(pixels)) from_ifd0 = pixels;
    if (!of_size && width > 0 && pixels.attribute("SizeX").as_llong(-1) == width &&
        pixels.attribute("SizeY").as_llong(-1) == height)
      of_size = pixels;
  }
  const pugi::xml_node chosen = of_size ? of_size : from_ifd0 ? from_ifd0 : first;
  if (!chosen) return out;
  const double x = physical_size(chosen, "X"), y = physical_size(chosen, "Y");
  if (x > 0 && y > 0) {
    out.x_um = x;
    out.y_um = y;
  }
  return out;
}

}  // namespace histocnn
