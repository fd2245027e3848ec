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

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "data/dicom_slide.h"
#include "data/slide.h"
#include "scratch_file.h"
#include "slide_reads.h"

namespace {

// Alone in this process's scratch folder: the series is the file itself.
std::string write_alone(const uint8_t* data, size_t size) {
  const std::string folder = "fuzz-dicom-" + std::to_string(::getpid());
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  return write_input_to(folder + "/slide.dcm", data, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = write_alone(data, size);
  if (path.empty()) return 0;
  try {
    const auto slide = histocnn::open_dicom_slide(path, 0, size_t(1) << 20);
    read_everywhere(*slide);
  } catch (const histocnn::Error&) {
  }
  return 0;
}
