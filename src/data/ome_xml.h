// The one thing a slide reader needs from an OME-TIFF's OME-XML (the
// ImageDescription of its first directory, as Bio-Formats, QuPath, bfconvert
// and libvips write it): the physical size of a level-0 pixel.
//
// OME-TIFF keeps other images (a label, a macro photograph, other planes) in
// further directories of the main chain and a pyramid's reduced levels in the
// SubIFDs of each image's first directory; data/tiff_slide.h reads the levels,
// this file the scale.
#pragma once

#include <cstdint>
#include <string>

namespace histocnn {

struct OmePixelSize {
  bool is_ome = false;  // the description is OME-XML
  double x_um = 0;      // microns per pixel; 0 when the image does not say
  double y_um = 0;      // (or says it in pixels, not a length)
};

// Reads `description`. Not OME-XML (any other text, Aperio's description,
// malformed XML): is_ome false. The image is the one of `width` x `height`
// pixels (SizeX, SizeY: the slide's level 0; a converted CellSens .vsi
// stores its overview photograph first), else the one stored from IFD 0
// (its TiffData's IFD attribute, 0 when absent), else the first;
// PhysicalSizeX/Y in their PhysicalSizeXUnit/YUnit (default µm; m, cm, mm,
// µm, nm, pm, Å and in(ch) are taken; any other unit, a missing,
// non-positive or non-finite size, or one of only the two axes leaves both
// 0).
OmePixelSize ome_pixel_size(const std::string& description, int64_t width = 0, int64_t height = 0);

}  // namespace histocnn
