// libFuzzer target: the slide label list of `slide --slide-labels`. A
// histocnn::Error is the right answer to bad input; anything else (a crash,
// another exception, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/slide_labels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const auto labels = histocnn::SlideLabels::parse(text, "fuzz/labels.csv");
    // Any lookup answers a row with a label of 0 or 1, or none.
    for (const std::string& name : {std::string("case01.svs"), std::string("a/b.tif"),
                                    std::string(), std::string("."), text.substr(0, 16)}) {
      const histocnn::SlideLabel* row = labels.find(name);
      if (row && row->label != 0 && row->label != 1) __builtin_trap();
    }
    labels.require_every({"case01.svs", "a/b.tif", text.substr(0, 16)});
  } catch (const histocnn::Error&) {
  }
  return 0;
}
