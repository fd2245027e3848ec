// A batch's images as bytes: what the loader cut (HWC, 3 channels), after
// each example's flips and rotations, and per example and channel a table
// from byte value to the network's input value. The input pipeline's colour
// work without HED jitter (data/augment.h: v / 255, the stain jitter, the
// normalisation) is a function of one byte of one channel of one example, so
// the table holds it exactly: looking a byte up gives the very float
// augment_to_chw writes. A device step is sent these instead of floats, a
// quarter of the bytes over PCIe and in page-locked memory, and looks them up
// on the device (launch_expand_byte_images, backends/cuda/cuda_kernels.h). PyTorch users do the
// same by hand: uint8 to the GPU, then .float() / 255.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/hd.h"

namespace histocnn {

constexpr int kByteTableSize = 256;                      // one float per byte value
constexpr int kByteTablesPerImage = 3 * kByteTableSize;  // a table per channel

struct ByteImages {
  const uint8_t* pixels = nullptr;  // count x H x W x 3
  const float* tables = nullptr;    // count x 3 x 256: image n, channel c, byte v
};

// Input value (n, c, p) of a batch of images of `plane` = H x W pixels:
// channel c of pixel p of image n, NCHW order. The one definition of what
// the bytes stand for, on the host and on the device.
HISTOCNN_HD float byte_image_value(const uint8_t* pixels, const float* tables, int64_t plane, int n,
                                   int c, int64_t p) {
  const uint8_t v = pixels[(int64_t(n) * plane + p) * 3 + c];
  return tables[(int64_t(n) * 3 + c) * kByteTableSize + v];
}

// The three values of pixel p of image n into an NCHW batch `chw` (zeros for
// rows n >= count: the rows a short batch leaves, as the float route's
// zeroed tail). The body of the device's expansion kernel, a thread per pixel.
HISTOCNN_HD void expand_byte_pixel(const uint8_t* pixels, const float* tables, float* chw,
                                   int64_t plane, int count, int n, int64_t p) {
  for (int c = 0; c < 3; ++c)
    chw[(int64_t(n) * 3 + c) * plane + p] =
        n < count ? byte_image_value(pixels, tables, plane, n, c, p) : 0.0f;
}

// The host's expansion: `batch` rows of NCHW floats, rows past `count` zero.
// requires: images holds count images of `plane` pixels; chw holds batch.
inline void expand_byte_images(const ByteImages& images, int count, int batch, int64_t plane,
                               float* chw) {
  for (int n = 0; n < batch; ++n)
    for (int64_t p = 0; p < plane; ++p)
      expand_byte_pixel(images.pixels, images.tables, chw, plane, count, n, p);
}

}  // namespace histocnn
