// A synthetic whole slide: a few tissue pieces of GlaS-like tissue on glass,
// each half benign and half malignant (or all benign, or all malignant: a
// cohort of slides with known labels), written as a pyramidal TIFF
// (data/slide_writer.h) at GlaS's scale — so `histocnn slide` can be tried,
// tested and timed on a machine without slides, libvips or a network.
//
// Tissue is drawn in blocks of kSynthSlideBlock level-0 pixels, each a
// draw_synthetic_tissue() field of its block's class; the pieces' outlines
// are cut per pixel. label_at() tells what any block holds (the truth a
// heatmap is checked against).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/slide_writer.h"

namespace histocnn {

constexpr int kSynthSlideBlock = 512;

// What the tissue pieces hold.
enum class SlideTissue { mixed, benign, malignant };

struct SynthSlideOptions {
  int64_t width = 20000, height = 15000;
  int pieces = 3;
  double mpp = 0.62005;
  uint64_t seed = 1;
  SlideTissue tissue = SlideTissue::mixed;
  SlideLayout layout = SlideLayout::generic;  // or Aperio's .svs layout
  // A marker ring around each piece, over glass and tissue alike, in blue,
  // green and red by turn: what a pathologist circles on the glass.
  bool pen_marks = false;
  // The right half of the slide (blocks from width / 2 on) out of focus:
  // its tissue blurred by a Gaussian of this many microns (sigma); 0: sharp.
  double out_of_focus_um = 0;
};

class SyntheticSlideLayout {
 public:
  explicit SyntheticSlideLayout(const SynthSlideOptions& options);
  // 0: glass, 1: benign tissue, 2: malignant tissue, at a level-0 pixel.
  int label_at(int64_t x, int64_t y) const;
  // The level-0 region at (x, y).
  Image paint(int64_t x, int64_t y, int width, int height) const;
  // The pen's colour (transmittance, 0-255 per channel) at a level-0 pixel;
  // null where no ring is drawn.
  const uint8_t* ink_at(int64_t x, int64_t y) const;
  // Whether the tissue at a level-0 pixel is drawn out of focus.
  bool out_of_focus_at(int64_t x, int64_t y) const;

 private:
  struct Piece {
    double cx, cy, rx, ry, phase1, phase2, split;  // split: the benign/malignant border's angle
  };
  int piece_at(double x, double y) const;  // -1 outside every piece
  int block_class(int64_t bx, int64_t by) const;
  SynthSlideOptions options_;
  std::vector<Piece> pieces_;
};

void write_synthetic_slide(const std::string& path, const SynthSlideOptions& options);

// The same slide as a DICOM whole-slide series in `folder` (data/dicom_writer.h:
// level-N.dcm, JPEG frames of 256 pixels at the TIFF's quality, TILED_FULL, the folder's name as
// the slide's barcode; the pyramid is the generic TIFF's, written first
// beside the folder and removed).
void write_synthetic_dicom_slide(const std::string& folder, const SynthSlideOptions& options);

// The slide's malignant tissue as a pathologist's outline of it
// (data/annotations.h), written atomically: a path ending in .xml gets ASAP
// XML (one Polygon per malignant block in the group "Tumor", as CAMELYON's
// files are laid out), any other QuPath GeoJSON (one "Tumor" annotation, a
// MultiPolygon of the malignant blocks).
void write_synthetic_annotations(const std::string& path, const SynthSlideOptions& options);

}  // namespace histocnn
