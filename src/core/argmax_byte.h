// The argmax byte every max pool of ours writes, on the CPU and on the GPU:
// one byte per pooled element holding the window position ky * p + kx of the
// first maximum (below 64: p <= 8), with kArgmaxNotPositive set where the
// stored pooled value is not > 0. Such a window passes no gradient (the ReLU
// before the pool: ReLU' taken on the pooled value, as max and ReLU commute),
// so every backward pass learns it from the byte it reads anyway instead of
// reading the pooled map back, and the pooled map dies once the next layer
// has read it. A flagged byte equals no window position, so a test
// `byte == position` alone rejects it.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace histocnn {

constexpr uint8_t kArgmaxNotPositive = 0x80;
static_assert(kArgmaxNotPositive >= 8 * 8, "the flag is no window position of a pool <= 8");

HISTOCNN_HD int argmax_position(uint8_t argmax) {
  return argmax & ~kArgmaxNotPositive;
}
HISTOCNN_HD bool argmax_passes(uint8_t argmax) {
  return (argmax & kArgmaxNotPositive) == 0;
}
// The byte for a window whose first maximum is at `position` and whose
// pooled value, as stored (after rounding to the map's type), is `stored`.
// NaN is not > 0: flagged, as the ReLU' test on the value would say.
HISTOCNN_HD uint8_t argmax_byte(int position, float stored) {
  return uint8_t(stored > 0 ? position : position | kArgmaxNotPositive);
}

}  // namespace histocnn
