// libFuzzer target: region annotations (QuPath GeoJSON, ASAP XML, Aperio
// ImageScope XML) for `slide --annotations`, and an OME-TIFF's OME-XML
// (data/ome_xml.h: a slide's description, XML like these). A
// histocnn::Error is the right answer to bad input; anything else (a crash,
// another exception, a sanitizer report) is a bug.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/annotations.h"
#include "data/ome_xml.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Never throws; a scale it gives is positive and finite.
  const histocnn::OmePixelSize ome =
      histocnn::ome_pixel_size(std::string(reinterpret_cast<const char*>(data), size));
  const bool scale =
      ome.x_um > 0 && ome.y_um > 0 && std::isfinite(ome.x_um) && std::isfinite(ome.y_um);
  if (!scale && (ome.x_um != 0 || ome.y_um != 0)) __builtin_trap();
  try {
    const auto a = histocnn::parse_annotations(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz/regions.geojson", {"any"});
    // Every fraction is a share; NaN or infinite coordinates must not break it.
    const double f = a.malignant_fraction(0, 0, 100, 100);
    if (!(f >= 0 && f <= 1)) __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  return 0;
}
