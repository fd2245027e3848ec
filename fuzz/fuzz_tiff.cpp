// libFuzzer target: TIFF decoding (libtiff behind our checks: size caps,
// grayscale refused, errors as histocnn::Error naming the file). libtiff
// reads from a path, so each input is written to one scratch file first.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "data/tiff_image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "fuzz-tiff-" + std::to_string(::getpid()) + ".tif";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    const histocnn::Image image = histocnn::load_tiff_image(path);
    if (image.rgb.size() != size_t(image.width) * image.height * 3) __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  return 0;
}
