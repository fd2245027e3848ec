// What the fused first-block kernels' two arithmetics share (fp32 FMAs in
// conv_pool_kernels.cpp, bf16 pair dot products in conv_pool_kernels_bf16.cpp):
// the scratch layout, the pooled map's addressing, the forward tile's ReLU +
// max + argmax tail, and backward's expansion of a pooled row into one conv
// row's gradient. Internal to those two files.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "backends/cpu/avx512.h"
#include "backends/cpu/conv_pool_kernels.h"

namespace histocnn::cpu::conv_pool {

constexpr int kLanes = 16;  // output channels per group (one register)

inline size_t whole_registers(size_t floats) {
  return (floats + kLanes - 1) / kLanes * kLanes;
}

// Scratch, in floats: the packed weights, then per thread
//   row:     one conv row's dense output gradient, [columns + 1][16] fp32
//            (the extra column is a zero that completes the last pair);
//   partial: the weight and bias gradient sums, [group][taps][16] then [group][16];
//   rows16:  the bf16 copy of the input rows a pooled row reads,
//            [in_c][pool + kernel - 1][row16] (bf16 arithmetic only);
//   pairs:   the gradient row as bf16 pairs of columns, [columns / 2 + 1][16]
//            (bf16 arithmetic only).
struct ScratchLayout {
  size_t packed, row, partial, rows16, pairs, per_thread;
  int64_t row16;  // bf16 elements per input row copy: in_w + 2 (a pair may read one past)
};
inline ScratchLayout scratch_layout(const ConvPoolGeometry& g) {
  const size_t taps = size_t(g.in_c) * g.kernel * g.kernel;
  const size_t columns = size_t(g.out_w()) * g.pool;
  ScratchLayout s;
  s.row16 = g.in_w + 2;
  s.packed = whole_registers(size_t(g.out_c) * taps);  // the bf16 pairs take no more
  s.row = whole_registers((columns + 1) * kLanes);
  s.partial = whole_registers(size_t(g.out_c) * (taps + 1));
  s.rows16 = whole_registers(size_t(g.in_c) * (g.pool + g.kernel - 1) * size_t(s.row16) / 2 + 1);
  s.pairs = whole_registers((columns / 2 + 1) * kLanes);
  s.per_thread = s.row + s.partial + s.rows16 + s.pairs;
  return s;
}

// Thread t's partial sums.
inline float* partial_of(float* scratch, const ScratchLayout& s, int t) {
  return scratch + s.packed + size_t(t) * s.per_thread + s.row;
}

// Pooled element (n, c, y, x) of `out` for the first lane of group `group`.
inline int64_t pooled_at(const LaneLayout& out, int n, int group, int y, int x) {
  const int c = group * kLanes;
  return int64_t(n) * out.image + int64_t(c / out.lanes) * out.block + int64_t(y) * out.row +
         int64_t(x) * out.column + c % out.lanes;
}

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// GCC's predictive commoning (-O3) carries input values from one tap or
// column to the next in xmm registers and broadcasts them on port 5, one of
// the two ports the 512-bit FMAs need: the inner loops ran at half speed.
// Broadcasting straight from memory (load ports) keeps both FMA ports busy.
#define HISTOCNN_FMA_KERNEL \
  __attribute__((target("avx512f"), optimize("no-predictive-commoning"), noinline))
#define HISTOCNN_BF16_KERNEL                                                                 \
  __attribute__((target("avx512f,avx512bw,avx512bf16"), optimize("no-predictive-commoning"), \
                 noinline))

// Pooled columns per forward tile: P x (P * T) accumulators, 16 for 2x2.
template <int P>
constexpr int tile_columns() {
  return 16 / (P * P) > 0 ? 16 / (P * P) : 1;
}

// The forward tile's end: ReLU, each window's first maximum and where it
// was, stored for T pooled columns.
template <int P, int T, typename Out>
HISTOCNN_AVX512 inline __attribute__((always_inline)) void pool_tile(const __m512 (&acc)[P][P * T],
                                                                     Out* pooled, uint8_t* argmax,
                                                                     int64_t column) {
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    __m512 best = _mm512_max_ps(acc[0][t * P], zero);  // ReLU, then the first maximum
    __m512i where = _mm512_setzero_si512();
#pragma GCC unroll 16
    for (int i = 0; i < P; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < P; ++j) {
        if (i == 0 && j == 0) continue;
        const __m512 v = _mm512_max_ps(acc[i][t * P + j], zero);
        const __mmask16 larger = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
        best = _mm512_mask_mov_ps(best, larger, v);
        where = _mm512_mask_mov_epi32(where, larger, _mm512_set1_epi32(i * P + j));
      }
    avx512::store16_rounded(pooled + t * column, best);
    avx512::store_bytes16(argmax + t * column, where);
  }
}

// The dense output gradient of convolution row y = pooled row * P + wy for
// one group: out_w * P vectors into d; returns their sum (the row's bias
// gradient).
template <typename In>
HISTOCNN_AVX512 inline __m512 expand_row(const In* pooled, const In* d_pooled,
                                         const uint8_t* argmax, int64_t column, int ow, int p,
                                         int wy, float* d) {
  __m512 sum = _mm512_setzero_ps();
  for (int px = 0; px < ow; ++px) {
    const int64_t at = px * column;
    const __mmask16 positive =
        _mm512_cmp_ps_mask(avx512::load16(pooled + at), _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 grad = _mm512_maskz_mov_ps(positive, avx512::load16(d_pooled + at));
    const __m512i where = avx512::load_bytes16(argmax + at);
    for (int wx = 0; wx < p; ++wx) {
      const __mmask16 here = _mm512_cmpeq_epi32_mask(where, _mm512_set1_epi32(wy * p + wx));
      const __m512 v = _mm512_maskz_mov_ps(here, grad);
      _mm512_storeu_ps(d + (px * p + wx) * kLanes, v);
      sum = _mm512_add_ps(sum, v);
    }
  }
  return sum;
}

// Every thread's sums start at zero, also those of threads the team may not
// use: conv_pool_backward adds them all.
inline void zero_partials(float* scratch, const ScratchLayout& s) {
  for (int t = 0; t < omp_get_max_threads(); ++t)
    std::fill(partial_of(scratch, s, t), partial_of(scratch, s, t) + s.partial, 0.0f);
}

#pragma GCC diagnostic pop

// The bf16 arithmetic (conv_pool_kernels_bf16.cpp): whether this CPU has
// AVX512-BF16 and oneDNN is not capped below it; forward from the fp32
// input and OIHW weights, both rounded to bf16 (packing into `scratch`);
// backward into the threads' partial sums (zeroed first).
bool bf16_pairs_available();
void forward_bf16_pairs(const float* x, const ConvPoolGeometry& g, const float* weights,
                        const float* bias, Bf16* pooled, uint8_t* argmax, const LaneLayout& out,
                        float* scratch);
void backward_bf16_pairs(const float* x, const ConvPoolGeometry& g, const Bf16* pooled,
                         const Bf16* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                         float* scratch);
#endif

}  // namespace histocnn::cpu::conv_pool
