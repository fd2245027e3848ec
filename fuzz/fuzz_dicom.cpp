// libFuzzer target: the DICOM whole-slide reader (data/dicom_slide.h) on a
// hostile file: dcmtk's parse, our checks of the header, the frame layout
// (TILED_FULL, TILED_SPARSE positions, fragments and the offset table) and
// the frame decoders. The file is alone in this process's scratch folder, so
// the series is just it. Regions are read on every level (the corner, one
// straddling the right and bottom edges, one wholly outside) and a small
// thumbnail; each must be w x h RGB pixels or a histocnn::Error, never a
// crash. Seeds: one-level series of 64 x 48 pixels in 16-pixel frames
// (uncompressed TILED_FULL; JPEG TILED_SPARSE; JPEG in 1 KiB fragments with
// the offset table), written by data/dicom_writer.h.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "data/dicom_slide.h"
#include "data/slide.h"

namespace {

std::string write_alone(const uint8_t* data, size_t size) {
  const std::string folder = "fuzz-dicom-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  const std::string path = folder + "/slide.dcm";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return "";
  const bool written = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && written ? path : "";
}

void read_checked(const histocnn::Slide& slide, int level, double x, double y, int w, int h) {
  const auto clamp = [](double v) { return int64_t(std::clamp(v, -1e12, 1e12)); };
  const histocnn::Image region = slide.read_region(level, clamp(x), clamp(y), w, h);
  if (region.width != w || region.height != h || region.rgb.size() != size_t(w) * h * 3)
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = write_alone(data, size);
  if (path.empty()) return 0;
  try {
    const auto slide = histocnn::open_dicom_slide(path, 0, size_t(1) << 20);
    const auto& levels = slide->levels();
    for (int level = 0; level < int(levels.size()); ++level) {
      const double ds = levels[level].downsample;
      read_checked(*slide, level, 0, 0, 64, 48);
      read_checked(*slide, level, double(levels[level].width - 40) * ds,
                   double(levels[level].height - 24) * ds, 80, 64);
      read_checked(*slide, level, double(levels[level].width + 8) * ds, 0, 16, 16);
    }
    const histocnn::Thumbnail thumbnail = histocnn::read_thumbnail(*slide, 64);
    if (thumbnail.image.rgb.size() != size_t(thumbnail.image.width) * thumbnail.image.height * 3)
      __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  return 0;
}
