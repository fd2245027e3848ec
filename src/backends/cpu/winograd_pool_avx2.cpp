// The Winograd forward's AVX2 version (winograd_pool_kernels.h), for
// oneDNN's 8-channel blocks (nChw8c) on CPUs without AVX-512, where oneDNN
// has no Winograd and the step would run its direct convolution: the
// AVX-512 version's three steps (winograd_pool_kernels.cpp) on 8 lanes.
//
// The GEMM takes 6 tiles x 16 output channels at a time: 12 accumulators,
// 2 weight vectors and a broadcast value of the 16 ymm registers (the
// AVX-512 version's 12 x 32 would take 48); a group's 12 tiles are two
// such passes. Every output still sums its input channels in order, one
// FMA each, and the transforms are the same operations: the same bits as
// the AVX-512 version.
#include <algorithm>
#include <type_traits>

#include "backends/cpu/avx2.h"
#include "backends/cpu/winograd_pool_tiling.h"
#include "core/error.h"

namespace histocnn::cpu::winograd_pool {

#if HISTOCNN_HAS_AVX2_CODE
namespace on_avx2 {  // named: unity builds put the AVX-512 version's namesakes beside these
namespace {

constexpr int kLanes = 8;       // channels per nChw8c block and per register
constexpr int kGemmTiles = 6;   // tiles of one GEMM pass
constexpr int kGroupSmall = 6;  // a group of fewer tiles than a pass holds
static_assert(kGroup % kGemmTiles == 0, "a group is whole GEMM passes");

HISTOCNN_AVX2 inline void store8(float* p, __m256 v) {
  _mm256_storeu_ps(p, v);
}

// B^T applied to six values along one direction of an input tile.
HISTOCNN_AVX2 inline void input_1d(const __m256 d[kAlpha], __m256 t[kAlpha]) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
  const __m256 d12 = _mm256_add_ps(d[1], d[2]), d34 = _mm256_add_ps(d[3], d[4]);
  const __m256 d1m2 = _mm256_sub_ps(d[1], d[2]), d4m3 = _mm256_sub_ps(d[4], d[3]);
  const __m256 d4m2 = _mm256_sub_ps(d[4], d[2]), d3m1 = _mm256_sub_ps(d[3], d[1]);
  t[0] = _mm256_fnmadd_ps(five, d[2], _mm256_fmadd_ps(four, d[0], d[4]));
  t[1] = _mm256_fnmadd_ps(four, d12, d34);   // -4 d1 - 4 d2 + d3 + d4
  t[2] = _mm256_fmadd_ps(four, d1m2, d4m3);  //  4 d1 - 4 d2 - d3 + d4
  t[3] = _mm256_fmadd_ps(two, d3m1, d4m2);   // -2 d1 - d2 + 2 d3 + d4
  t[4] = _mm256_fnmadd_ps(two, d3m1, d4m2);  //  2 d1 - d2 - 2 d3 + d4
  t[5] = _mm256_fnmadd_ps(five, d[3], _mm256_fmadd_ps(four, d[1], d[5]));
}

// A^T applied to six values along one direction of a transformed tile.
HISTOCNN_AVX2 inline void output_1d(const __m256 m[kAlpha], __m256 s[kOut]) {
  const __m256 two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f),
               eight = _mm256_set1_ps(8.0f);
  const __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
  const __m256 c = _mm256_add_ps(m[3], m[4]), d = _mm256_sub_ps(m[3], m[4]);
  s[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
  s[1] = _mm256_fmadd_ps(two, d, b);
  s[2] = _mm256_fmadd_ps(four, c, a);
  s[3] = _mm256_add_ps(_mm256_fmadd_ps(eight, d, b), m[5]);
}

// One 8-channel block of one tile: its 6x6 inputs (zero outside the map,
// which is the padding; kInside: the tile lies within it) -> v[xi *
// v_stride], xi = row * 6 + column; the next tile's new columns prefetched.
template <bool kInside, typename T>
HISTOCNN_AVX2 void input_tile(const T* plane, int64_t row, int h, int w, int y0, int x0, float* v,
                              size_t v_stride) {
  __m256 rows[kAlpha][kAlpha];  // B^T d, by rows
  for (int s = 0; s < kAlpha; ++s) {
    __m256 d[kAlpha], t[kAlpha];
    const int x = x0 + s;
    for (int r = 0; r < kAlpha; ++r) {
      const int y = y0 + r;
      const int64_t at = int64_t(y) * row + int64_t(x) * kLanes;
      if (kInside) {
        d[r] = avx2::load8(plane + at);
        if (s < kOut)  // a hint only: past the map's end it fetches nothing of ours
          _mm_prefetch(reinterpret_cast<const char*>(plane + at + kAlpha * kLanes), _MM_HINT_T0);
      } else {
        d[r] = y >= 0 && y < h && x >= 0 && x < w ? avx2::load8(plane + at) : _mm256_setzero_ps();
      }
    }
    input_1d(d, t);
    for (int r = 0; r < kAlpha; ++r) rows[r][s] = t[r];
  }
  for (int r = 0; r < kAlpha; ++r) {
    __m256 t[kAlpha];
    input_1d(rows[r], t);
    for (int s = 0; s < kAlpha; ++s) store8(v + size_t(r * kAlpha + s) * v_stride, t[s]);
  }
}

// NT tiles x (OB x 8) output channels of one xi: m[t][o] = sum over c of
// v[t][c] u[c][o]; v rows in_c apart, u rows and m rows out_c apart.
template <int NT, int OB>
HISTOCNN_AVX2 void gemm_tiles(const float* v, const float* u, float* m, int in_c, int out_c) {
  static_assert(NT * OB + OB + 1 <= 16, "the sums, weights and a value fit the registers");
  __m256 acc[NT][OB];
#pragma GCC unroll 6
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 2
    for (int b = 0; b < OB; ++b) acc[t][b] = _mm256_setzero_ps();
  for (int c = 0; c < in_c; ++c) {
    __m256 w[OB];
#pragma GCC unroll 2
    for (int b = 0; b < OB; ++b) w[b] = _mm256_loadu_ps(u + int64_t(c) * out_c + b * kLanes);
#pragma GCC unroll 6
    for (int t = 0; t < NT; ++t) {
      const __m256 x = _mm256_broadcast_ss(v + int64_t(t) * in_c + c);
#pragma GCC unroll 2
      for (int b = 0; b < OB; ++b) acc[t][b] = _mm256_fmadd_ps(x, w[b], acc[t][b]);
    }
  }
#pragma GCC unroll 6
  for (int t = 0; t < NT; ++t)
#pragma GCC unroll 2
    for (int b = 0; b < OB; ++b) _mm256_storeu_ps(m + int64_t(t) * out_c + b * kLanes, acc[t][b]);
}

// Every xi's GEMM for a group of NT tiles, kGemmTiles at a time.
template <int NT>
void gemm_group(const float* v, const float* u, float* m, int in_c, int out_c) {
  constexpr int kPass = std::min(NT, kGemmTiles);
  for (int xi = 0; xi < kXi; ++xi) {
    const float* u_xi = u + size_t(xi) * in_c * out_c;
    for (int t0 = 0; t0 < NT; t0 += kPass) {
      const float* v_xi = v + (size_t(xi) * NT + t0) * in_c;
      float* m_xi = m + (size_t(xi) * NT + t0) * out_c;
      int o = 0;
      for (; o + 2 * kLanes <= out_c; o += 2 * kLanes)
        gemm_tiles<kPass, 2>(v_xi, u_xi + o, m_xi + o, in_c, out_c);
      if (o < out_c) gemm_tiles<kPass, 1>(v_xi, u_xi + o, m_xi + o, in_c, out_c);
    }
  }
}

// One tile's 8 output channels from m (36 vectors m_stride apart): the 4x4
// outputs + bias, ReLU, then the four 2x2 windows (those inside the pooled
// map) to pooled and argmax at `at` + window offsets; in bf16 each maximum
// rounded once and flagged by what is stored, as the AVX-512 version.
template <typename T>
HISTOCNN_AVX2 void output_tile(const float* m, size_t m_stride, __m256 bias, T* pooled,
                               uint8_t* argmax, const LaneLayout& out, int64_t at, int py0,
                               int px0) {
  __m256 cols[kOut][kAlpha];  // A^T m, by rows
  for (int j = 0; j < kAlpha; ++j) {
    __m256 col[kAlpha], s[kOut];
    for (int i = 0; i < kAlpha; ++i)
      col[i] = _mm256_loadu_ps(m + size_t(i * kAlpha + j) * m_stride);
    output_1d(col, s);
    for (int i = 0; i < kOut; ++i) cols[i][j] = s[i];
  }
  __m256 y[kOut][kOut];
  const __m256 zero = _mm256_setzero_ps();
  for (int i = 0; i < kOut; ++i) {
    __m256 s[kOut];
    output_1d(cols[i], s);
    for (int j = 0; j < kOut; ++j) y[i][j] = _mm256_max_ps(_mm256_add_ps(s[j], bias), zero);
  }
  for (int wy = 0; wy < 2; ++wy)
    for (int wx = 0; wx < 2; ++wx) {
      if (py0 + wy >= out.h || px0 + wx >= out.w) continue;  // a window past the map
      __m256 best = y[2 * wy][2 * wx];
      __m256i where = _mm256_setzero_si256();
      for (int k = 1; k < 4; ++k) {
        const __m256 v = y[2 * wy + k / 2][2 * wx + k % 2];
        const __m256 larger = _mm256_cmp_ps(v, best, _CMP_GT_OQ);  // first max wins
        best = _mm256_blendv_ps(best, v, larger);
        where = _mm256_blendv_epi8(where, _mm256_set1_epi32(k), _mm256_castps_si256(larger));
      }
      if constexpr (std::is_same_v<T, Bf16>) best = avx2::round8_to_bf16(best);
      where = avx2::flag_not_positive(where, best, kArgmaxNotPositive);
      const int64_t e = at + int64_t(wy) * out.row + int64_t(wx) * out.column;
      avx2::store8(pooled + e, best);
      avx2::store_bytes8(argmax + e, where);
    }
}

// A group of NT tiles (`live` of them real) of tile row ty of image img,
// starting at tile column tx0.
template <int NT, typename T>
HISTOCNN_AVX2 void run_group(const T* x, const LaneLayout& in, const float* u, const float* bias,
                             T* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g,
                             int img, int ty, int tx0, int live, float* v, float* m) {
  const int in_blocks = g.in_c / kLanes, out_blocks = g.out_c / kLanes;
  const size_t v_stride = size_t(NT) * g.in_c, m_stride = size_t(NT) * g.out_c;
  for (int b = 0; b < in_blocks; ++b) {  // a block's rows: fewer streams at once
    const T* plane = x + int64_t(img) * in.image + int64_t(b) * in.block;
    for (int t = 0; t < NT; ++t) {
      float* vt = v + size_t(t) * g.in_c + size_t(b) * kLanes;
      if (t >= live) {  // a padding tile: zeros, so its sums stay finite
        for (int xi = 0; xi < kXi; ++xi) store8(vt + xi * v_stride, _mm256_setzero_ps());
        continue;
      }
      const int y0 = ty * kOut - g.pad, x0 = (tx0 + t) * kOut - g.pad;
      if (y0 >= 0 && x0 >= 0 && y0 + kAlpha <= in.h && x0 + kAlpha <= in.w)
        input_tile<true>(plane, in.row, in.h, in.w, y0, x0, vt, v_stride);
      else
        input_tile<false>(plane, in.row, in.h, in.w, y0, x0, vt, v_stride);
    }
  }
  gemm_group<NT>(v, u, m, g.in_c, g.out_c);
  for (int t = 0; t < live; ++t) {
    const int py0 = ty * 2, px0 = (tx0 + t) * 2;
    for (int b = 0; b < out_blocks; ++b) {
      const int64_t at = int64_t(img) * out.image + int64_t(b) * out.block +
                         int64_t(py0) * out.row + int64_t(px0) * out.column;
      output_tile(m + size_t(t) * g.out_c + size_t(b) * kLanes, m_stride,
                  _mm256_loadu_ps(bias + b * kLanes), pooled, argmax, out, at, py0, px0);
    }
  }
}

template <typename T>
void run_group_typed(const T* x, const LaneLayout& in, const float* u, const float* bias, T* pooled,
                     uint8_t* argmax, const LaneLayout& out, const Tiling& g, int img, int ty,
                     int tx0, int live, float* v, float* m) {
  if (live <= kGroupSmall)
    return run_group<kGroupSmall>(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
  run_group<kGroup>(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
}

}  // namespace
}  // namespace on_avx2

void run_group_avx2(const float* x, const LaneLayout& in, const float* u, const float* bias,
                    float* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g, int img,
                    int ty, int tx0, int live, float* v, float* m) {
  on_avx2::run_group_typed(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
}
void run_group_avx2(const Bf16* x, const LaneLayout& in, const float* u, const float* bias,
                    Bf16* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g, int img,
                    int ty, int tx0, int live, float* v, float* m) {
  on_avx2::run_group_typed(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
}

#else  // not x86-64: winograd_pool_available() is false

void run_group_avx2(const float*, const LaneLayout&, const float*, const float*, float*, uint8_t*,
                    const LaneLayout&, const Tiling&, int, int, int, int, float*, float*) {
  require(false, "Winograd conv+pool: x86-64 kernels only");
}
void run_group_avx2(const Bf16*, const LaneLayout&, const float*, const float*, Bf16*, uint8_t*,
                    const LaneLayout&, const Tiling&, int, int, int, int, float*, float*) {
  require(false, "Winograd conv+pool: x86-64 kernels only");
}

#endif

}  // namespace histocnn::cpu::winograd_pool
