// libFuzzer target: image decoding (stb_image behind our checks).
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const histocnn::Image image =
        histocnn::decode_image(std::string(reinterpret_cast<const char*>(data), size), "fuzz.png");
    if (image.rgb.size() != size_t(image.width) * image.height * 3) __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  return 0;
}
