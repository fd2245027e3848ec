// libFuzzer target: TIFF decoding (libtiff behind our checks: size caps,
// grayscale refused, errors as histocnn::Error naming the file). libtiff
// reads from a path, so each input is written to one scratch file first.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/tiff_image.h"
#include "scratch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = write_scratch_file("fuzz-tiff", data, size);
  if (path.empty()) return 0;
  try {
    const histocnn::Image image = histocnn::load_tiff_image(path);
    if (image.rgb.size() != size_t(image.width) * image.height * 3) __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  return 0;
}
