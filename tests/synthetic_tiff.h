// A small synthetic pyramidal TIFF (data/synth_slide.h) in a temporary
// folder of its own, open: the source the slide-reader tests convert and
// compare against.
#pragma once

#include <cstdint>
#include <memory>

#include "data/slide.h"
#include "data/synth_slide.h"
#include "test_util.h"

namespace histocnn {

struct SyntheticTiff {
  testing::TempDir dir;  // holds s.tif
  std::unique_ptr<Slide> tiff;
  SyntheticTiff(int64_t width, int64_t height, int pieces) {
    SynthSlideOptions o;
    o.width = width;
    o.height = height;
    o.pieces = pieces;
    write_synthetic_slide(dir / "s.tif", o);
    tiff = open_slide(dir / "s.tif");
  }
};

}  // namespace histocnn
