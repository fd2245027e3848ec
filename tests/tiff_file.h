// A plain RGB TIFF (LZW; strips, or 16-pixel tiles) written with libtiff:
// what microscopes and Kather's NCT-CRC-HE-100K tiles come in; and the
// pieces tests that write or decode TIFF directories share.
#pragma once

#include <gtest/gtest.h>
#include <tiffio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "data/image.h"

namespace histocnn::testing {

// The current directory as 8-bit RGB of width x height pixels.
inline void set_rgb8_fields(TIFF* t, uint32_t width, uint32_t height, uint16_t compression,
                            uint16_t planar = PLANARCONFIG_CONTIG) {
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, uint16_t(3));
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, planar);
  TIFFSetField(t, TIFFTAG_COMPRESSION, compression);
}

// The current directory decoded whole by libtiff's RGBA interface (the way
// OpenSlide 3.4 decodes a generic TIFF's tiles).
inline Image read_rgba_page(TIFF* t) {
  uint32_t w = 0, h = 0;
  TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
  std::vector<uint32_t> abgr(size_t(w) * h);
  EXPECT_TRUE(TIFFReadRGBAImageOriented(t, w, h, abgr.data(), ORIENTATION_TOPLEFT, 0));
  Image image;
  image.width = int(w);
  image.height = int(h);
  image.rgb.reserve(abgr.size() * 3);
  for (uint32_t p : abgr)
    image.rgb.insert(image.rgb.end(),
                     {uint8_t(TIFFGetR(p)), uint8_t(TIFFGetG(p)), uint8_t(TIFFGetB(p))});
  return image;
}

inline void write_tiff(const std::string& path, const Image& image, bool tiled) {
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  set_rgb8_fields(t, uint32_t(image.width), uint32_t(image.height), COMPRESSION_LZW);
  if (tiled) {
    TIFFSetField(t, TIFFTAG_TILEWIDTH, uint32_t(16));
    TIFFSetField(t, TIFFTAG_TILELENGTH, uint32_t(16));
    std::vector<uint8_t> tile(16 * 16 * 3);
    for (int ty = 0; ty < image.height; ty += 16)
      for (int tx = 0; tx < image.width; tx += 16) {
        std::fill(tile.begin(), tile.end(), 0);
        for (int r = 0; r < 16 && ty + r < image.height; ++r)
          for (int c = 0; c < 16 && tx + c < image.width; ++c)
            std::copy_n(image.row(ty + r) + 3 * (tx + c), 3, &tile[(r * 16 + c) * 3]);
        TIFFWriteTile(t, tile.data(), uint32_t(tx), uint32_t(ty), 0, 0);
      }
  } else {
    for (int r = 0; r < image.height; ++r)
      TIFFWriteScanline(t, const_cast<uint8_t*>(image.row(r)), uint32_t(r), 0);
  }
  TIFFClose(t);
}

}  // namespace histocnn::testing
