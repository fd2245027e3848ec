// A plain RGB TIFF (LZW; strips, or 16-pixel tiles) written with libtiff:
// what microscopes and Kather's NCT-CRC-HE-100K tiles come in.
#pragma once

#include <gtest/gtest.h>
#include <tiffio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "data/image.h"

namespace histocnn::testing {

inline void write_tiff(const std::string& path, const Image& image, bool tiled) {
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, uint32_t(image.width));
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, uint32_t(image.height));
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, uint16_t(3));
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
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
