// libFuzzer target: the direct TIFF slide reader (data/tiff_slide.h) on a
// hostile file. It wraps the OpenSlide reader; here a stand-in takes
// OpenSlide's place (levels = the tiled directories, each smaller than the
// one before, downsamples as OpenSlide computes them; its own reads give
// glass), because OpenSlide 3.4.1 itself is not ours to fuzz: a 573-byte
// mutation of the .svs seed made its openslide_open() ask for 14 GB, over
// the fuzzer's malloc limit (outside it the allocation is lazy and never
// touched: tests/data/damaged-aperio.svs ends `histocnn slide` in one line,
// a test in test_slide_cli.cpp). Regions
// are read on every level where the tiling reads them (the corner, one
// straddling the right and bottom edges, one wholly outside) and a small
// thumbnail; each must be w x h RGB pixels or a histocnn::Error, never a
// crash. Seeds: `histocnn synth --slide` outputs of 512 x 512 (.tif: the
// generic layout; .svs: Aperio's, with its stripped thumbnail) and of
// 600 x 600 (.ome.tif: level 0 with OME-XML and a SubIFD of 300 x 300).
#include <tiffio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "data/slide.h"
#include "data/tiff_image.h"
#include "data/tiff_slide.h"
#include "scratch_file.h"
#include "slide_reads.h"

namespace {

class OpenSlideStandIn final : public histocnn::Slide {
 public:
  explicit OpenSlideStandIn(const std::string& path) {
    path_ = path;
    format_ = "generic-tiff";
    reader_ = "openslide";
    histocnn::tiff_errors_to_this_thread();
    std::unique_ptr<TIFF, void (*)(TIFF*)> tiff(TIFFOpen(path.c_str(), "r"), TIFFClose);
    if (!tiff) throw histocnn::Error(path + ": not a TIFF");
    do {
      uint32_t w = 0, h = 0;
      TIFFGetField(tiff.get(), TIFFTAG_IMAGEWIDTH, &w);
      TIFFGetField(tiff.get(), TIFFTAG_IMAGELENGTH, &h);
      if (!TIFFIsTiled(tiff.get()) || w == 0 || h == 0) continue;
      if (!levels_.empty() && (w >= levels_.back().width || h >= levels_.back().height)) continue;
      const double ds = levels_.empty()
                            ? 1.0
                            : (double(levels_[0].width) / w + double(levels_[0].height) / h) / 2;
      levels_.push_back({w, h, ds});
    } while (levels_.size() < 16 && TIFFReadDirectory(tiff.get()));
    if (levels_.empty()) throw histocnn::Error(path + ": no tiled directory");
  }
  histocnn::Image read_region(int level, int64_t, int64_t, int w, int h) const override {
    histocnn::require_slide_region(path_, level, int(levels_.size()), w, h);
    histocnn::Image glass;
    glass.width = w;
    glass.height = h;
    glass.rgb.assign(size_t(w) * h * 3, 255);
    return glass;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = write_scratch_file("fuzz-slide", data, size);
  if (path.empty()) return 0;
  try {
    const auto slide = histocnn::with_direct_tiff_reads(std::make_unique<OpenSlideStandIn>(path));
    read_everywhere(*slide);
  } catch (const histocnn::Error&) {
  }
  return 0;
}
