// Where element (n, c, y, x) of a 4-d map lives in memory: channels first
// (NCHW, PyTorch's default and the step's unless asked) or channels last
// (NHWC, `--channels-last`: what cuDNN's tensor-core kernels read natively;
// with NCHW operands they transpose around every convolution). Filters use
// the same arithmetic with (n, c, y, x) = (output, input, row, column): KCRS
// (PyTorch's OIHW) channels first, KRSC channels last.
//
// Plain __host__ __device__ functions: our kernels index through them, and
// host tests run them against naive loops.
#pragma once

#include <cstdint>

#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

struct MapCoords {
  int n, c, y, x;
};

struct MapLayout {
  int c, h, w;
  bool channels_last;

  HISTOCNN_HD int64_t at(int n, int ch, int y, int x) const {
    return channels_last ? ((int64_t(n) * h + y) * w + x) * c + ch
                         : ((int64_t(n) * c + ch) * h + y) * w + x;
  }
  // One plane's (image n, channel ch) element (y, x) is at
  // at(n, ch, 0, 0) + y * row_stride() + x * col_stride().
  HISTOCNN_HD int64_t row_stride() const { return channels_last ? int64_t(w) * c : w; }
  HISTOCNN_HD int64_t col_stride() const { return channels_last ? c : 1; }
  // The coordinates of the element at index i (the inverse of at).
  HISTOCNN_HD MapCoords coords(int64_t i) const {
    MapCoords m{};
    if (channels_last) {
      m.c = int(i % c), i /= c;
      m.x = int(i % w), i /= w;
      m.y = int(i % h), m.n = int(i / h);
    } else {
      m.x = int(i % w), i /= w;
      m.y = int(i % h), i /= h;
      m.c = int(i % c), m.n = int(i / c);
    }
    return m;
  }
  HISTOCNN_HD int channel_of(int64_t i) const {
    return channels_last ? int(i % c) : int((i / (int64_t(h) * w)) % c);
  }
};

// Per-channel sums over a map (the bias gradient, batch norm's statistics)
// are reduced in two stages, both in a fixed order: partial sums [rows, C],
// then launch_column_sums over the rows. Channels first, a row per image
// (a block per plane); channels last, a row per image band: each image's
// pixels split into this many bands (a block per image, band and 32
// channels), so a small batch still fills the GPU. A plain function of the
// shape: the same bands, the same sums, on every device.
HISTOCNN_HD int channel_sum_bands(int n, int channels, int64_t pixels) {
  const int64_t tiles = int64_t(n) * ((channels + 31) / 32);
  int64_t bands = (4096 + tiles - 1) / tiles;
  if (bands > pixels / 8) bands = pixels / 8;  // at least a pixel per row of threads
  return bands < 1 ? 1 : int(bands);
}
HISTOCNN_HD int channel_sum_rows(int n, const MapLayout& m) {
  return m.channels_last ? n * channel_sum_bands(n, m.c, int64_t(m.h) * m.w) : n;
}
// Two sums at once (batch norm's backward pass needs sum d and sum d x^).
struct SumPair {
  float a = 0, b = 0;
};

// Element i of `out` (in `to`'s layout) is the same map element of `in` (in
// the other layout, same shape): a transposition between channels first and
// channels last, converting the element type as it goes.
template <typename From>
HISTOCNN_HD float relaid_at(const From* in, const MapLayout& from, const MapLayout& to, int64_t i) {
  const MapCoords m = to.coords(i);
  return load(in, from.at(m.n, m.c, m.y, m.x));
}

}  // namespace histocnn::cuda
