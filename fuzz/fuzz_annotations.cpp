// libFuzzer target: region annotations (QuPath GeoJSON, ASAP XML, Aperio
// ImageScope XML) for `slide --annotations`. A histocnn::Error is the right answer to bad input;
// anything else (a crash, another exception, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/annotations.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
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
