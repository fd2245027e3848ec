// libFuzzer target: the model spec parser and the shape inference after it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const histocnn::ModelSpec spec = histocnn::parse_model_spec(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz spec");
    // The canonical text parses to the same spec.
    if (histocnn::parse_model_spec(spec.text(), "round trip").text() != spec.text())
      __builtin_trap();
    for (int size_px : {32, 200}) histocnn::infer_shapes(spec, 8, size_px, size_px);
  } catch (const histocnn::Error&) {
  }
  return 0;
}
