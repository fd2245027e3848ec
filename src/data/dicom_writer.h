// Writing a slide as a DICOM whole-slide series (one file per pyramid level,
// VL Whole Slide Microscopy Image), with dcmtk: what `histocnn synth
// --slide-format dicom` makes, so that the DICOM path of `slide` and `tiles`
// can be run end to end without downloads, and what the reader's tests
// compare against the same slide read as TIFF.
//
// Each level of the source becomes level-N.dcm in `folder`: frames of
// tile x tile pixels, baseline JPEG (YBR_FULL_422) or uncompressed RGB,
// TILED_FULL (every tile, row by row) or TILED_SPARSE (per-frame positions,
// tiles of pure glass left out, frames written in reverse order so that a
// reader must use the positions). Level 0 is ORIGINAL\PRIMARY\VOLUME\NONE,
// the others DERIVED\PRIMARY\VOLUME\RESAMPLED; Pixel Spacing is the source's
// microns per pixel times its downsample.
//
// Memory: one level's compressed frames (the writer is for test slides and
// the synthetic generator, not for converting scans). The folder appears
// under its name only when complete (written as <folder>.partial, renamed).
#pragma once

#include <string>

#include "data/slide.h"

namespace histocnn {

struct DicomWriterOptions {
  int tile = 256;
  bool jpeg = true;          // else uncompressed RGB
  int quality = 90;          // JPEG
  bool sparse = false;       // TILED_SPARSE instead of TILED_FULL
  int fragment_kb = 0;       // split each frame into fragments of this many KiB (0: one each)
  bool offset_table = true;  // fill the Basic Offset Table
  // The slide's barcode (Container Identifier, which the standard requires;
  // left out when empty, as by converters that do not fill it).
  std::string container_id;
};

void write_dicom_slide(const std::string& folder, const Slide& source,
                       const DicomWriterOptions& options = {});

}  // namespace histocnn
