// Compressed tiles (a DICOM frame, one JPEG or JPEG 2000 code stream) to
// and from 8-bit RGB, with libjpeg-turbo and OpenJPEG: the decoders OpenSlide
// uses, so a slide read here has the pixels OpenSlide would give.
//
// Contract: decoders return exactly width x height RGB pixels or throw a
// one-line error (corrupt data, other dimensions, not three 8-bit
// components); they never print. All are safe to call from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace histocnn {

// How the three components of a JPEG stream are to be read: as YCbCr
// (DICOM's YBR_FULL_422, converted to RGB) or as RGB already (DICOM's RGB).
enum class JpegColours { ycbcr, rgb };

std::vector<uint8_t> decode_jpeg_rgb(const uint8_t* data, size_t size, int width, int height,
                                     JpegColours colours);

// A JPEG 2000 code stream (J2K or JP2); a multi-component transform in the
// stream (DICOM's YBR_ICT / YBR_RCT) is undone by the decoder.
std::vector<uint8_t> decode_jpeg2000_rgb(const uint8_t* data, size_t size, int width, int height);

// Baseline JPEG of width x height RGB pixels, stored as YCbCr with 4:2:0
// chroma (libjpeg's default), at `quality` 1..100.
std::vector<uint8_t> encode_jpeg_rgb(const uint8_t* rgb, int width, int height, int quality);

}  // namespace histocnn
