// bfloat16 storage for --precision bf16: the upper 16 bits of an IEEE-754
// float, rounded to nearest, ties to even — the bits and rounding of CUDA's
// __nv_bfloat16, oneDNN's bf16 and PyTorch's torch.bfloat16, so cuDNN and
// oneDNN read our tensors as their own. Plain bit arithmetic rather than
// cuda_bf16.h, so the same functions run in the CUDA kernels, the CPU
// backend's own kernels and the host tests.
//
// load/store overloads let one kernel body serve fp32 and bf16 tensors: the
// arithmetic is always fp32, only what is kept in memory is rounded.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"

namespace histocnn {

struct Bf16 {
  uint16_t bits;
};
static_assert(sizeof(Bf16) == 2, "bf16 is two bytes, as cuDNN expects");

HISTOCNN_HD uint32_t bits_of(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

HISTOCNN_HD float float_of(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Round to nearest even; NaN stays a (quiet) NaN of the same sign, values
// beyond bf16's largest finite round to infinity as IEEE rounding says.
HISTOCNN_HD Bf16 to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return Bf16{uint16_t((u >> 16) | 0x0040u)};
  const uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);
  return Bf16{uint16_t((u + rounding) >> 16)};
}

HISTOCNN_HD float to_float(Bf16 b) {
  return float_of(uint32_t(b.bits) << 16);
}

// What a value becomes once kept in bf16.
HISTOCNN_HD float round_to_bf16(float f) {
  return to_float(to_bf16(f));
}

HISTOCNN_HD float load(const float* p, int64_t i) {
  return p[i];
}
HISTOCNN_HD float load(const Bf16* p, int64_t i) {
  return to_float(p[i]);
}
HISTOCNN_HD void store(float* p, int64_t i, float v) {
  p[i] = v;
}
HISTOCNN_HD void store(Bf16* p, int64_t i, float v) {
  p[i] = to_bf16(v);
}

}  // namespace histocnn
