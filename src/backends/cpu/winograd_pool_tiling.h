// Internal to the Winograd forward (winograd_pool_kernels.h): the tiling its
// AVX-512 version (16-channel blocks, winograd_pool_kernels.cpp) and AVX2
// version (8-channel blocks, winograd_pool_avx2.cpp) share, and the AVX2
// version's entry point.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cpu/winograd_pool_kernels.h"

namespace histocnn::cpu::winograd_pool {

constexpr int kAlpha = 6;  // input tile side: 4 outputs + 3 taps - 1
constexpr int kXi = kAlpha * kAlpha;
constexpr int kOut = 4;     // output tile side: two 2x2 pool windows
constexpr int kGroup = 12;  // tiles a group at most (both versions)

// The shapes one call works with.
struct Tiling {
  int n, in_c, out_c, pad;
  int pooled_h, pooled_w, tiles_y, tiles_x;
};
inline Tiling tiling_of(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  Tiling t{};
  t.n = in.n, t.in_c = conv.in_c, t.out_c = conv.out_c, t.pad = conv.pad;
  t.pooled_h = out.h, t.pooled_w = out.w;
  t.tiles_y = ceil_div(out.h * 2, kOut);  // a tile row holds two pooled rows
  t.tiles_x = ceil_div(out.w * 2, kOut);
  return t;
}

// V and M of one group, per thread (whole registers: in_c and out_c are
// multiples of the version's lanes).
inline size_t group_floats(const PooledConv& conv) {
  return size_t(kXi) * kGroup * size_t(conv.in_c + conv.out_c);
}

// The AVX2 version: the tiles [tx0, tx0 + live) of tile row ty of image img
// (live <= kGroup), with v and m the thread's group_floats. Arguments as
// winograd_pool_forward's.
void run_group_avx2(const float* x, const LaneLayout& in, const float* u, const float* bias,
                    float* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g, int img,
                    int ty, int tx0, int live, float* v, float* m);
void run_group_avx2(const Bf16* x, const LaneLayout& in, const float* u, const float* bias,
                    Bf16* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g, int img,
                    int ty, int tx0, int live, float* v, float* m);

}  // namespace histocnn::cpu::winograd_pool
