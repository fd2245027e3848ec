// libFuzzer target: the safetensors reader and the model-file checks on top.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    histocnn::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size),
                                "fuzz.safetensors");
  } catch (const histocnn::Error&) {
  }
  return 0;
}
