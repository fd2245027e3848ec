// The fused first-block kernels in bf16 arithmetic (conv_pool_kernels.h,
// conv_pool_bf16_arithmetic): where the CPU has AVX512-BF16, one
// `vdpbf16ps` multiplies and adds two bf16 pairs per fp32 lane, so pairs of
// taps cost one instruction.
//
// Forward pairs taps along the kernel's rows: (kx, kx + 1), the last one of
// an odd kernel with a zero weight; the input pair is two neighbouring
// pixels, one 32-bit broadcast. 3x3: 6 instructions per channel and output
// instead of 9. Backward pairs columns: (x, x + 1) of the gradient row with
// the input pixels under them, for each tap: half the instructions.
//
// Each work item (image, pooled row) first rounds the input rows it reads to
// bf16 (in a per-thread copy with a zero column past the end, which the last
// pair may read). Same structure, tiles and tail as the fp32 kernels
// (conv_pool_kernels.cpp, conv_pool_common.h).
#include <cstring>

#include "backends/cpu/conv_pool_common.h"

namespace histocnn::cpu::conv_pool {

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define HISTOCNN_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

bool bf16_pairs_available() {
  static const bool cpu = __builtin_cpu_supports("avx512bf16");
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  return cpu && (isa & bf16) == bf16;  // ISA values nest
}

namespace {

// Two neighbouring bf16 values, broadcast as one 32-bit pair to every lane.
HISTOCNN_BF16 inline __m512bh pair16(const uint16_t* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof bits);
  return (__m512bh)_mm512_set1_epi32(int(bits));
}

// Input rows [y0, y0 + count) of every channel of image n, rounded to bf16,
// into rows16[c][r][row16]; zeros past in_w.
HISTOCNN_BF16 void copy_rows(const float* x, const ConvPoolGeometry& g, int n, int y0, int count,
                             int64_t row16, uint16_t* rows16) {
  for (int c = 0; c < g.in_c; ++c)
    for (int r = 0; r < count; ++r) {
      const float* from = x + ((int64_t(n) * g.in_c + c) * g.in_h + y0 + r) * g.in_w;
      uint16_t* to = rows16 + (int64_t(c) * count + r) * row16;
      int i = 0;
      for (; i + kLanes <= g.in_w; i += kLanes)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(to + i),
                            (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(from + i)));
      for (; i < g.in_w; ++i) to[i] = to_bf16(from[i]).bits;
      for (; i < row16; ++i) to[i] = 0;
    }
}

// Weights OIHW -> [group][in_c][k][pairs][16 lanes][2]: one load per pair.
void pack_weights(const float* w, const ConvPoolGeometry& g, uint16_t* packed) {
  const int k = g.kernel, pairs = (k + 1) / 2;
  for (int o = 0; o < g.out_c; ++o)
    for (int c = 0; c < g.in_c; ++c)
      for (int ky = 0; ky < k; ++ky)
        for (int p = 0; p < pairs; ++p)
          for (int half = 0; half < 2; ++half) {
            const int kx = 2 * p + half;
            const float v = kx < k ? w[((o * g.in_c + c) * k + ky) * k + kx] : 0.0f;
            const int64_t at = (((int64_t(o / kLanes) * g.in_c + c) * k + ky) * pairs + p) * 32;
            packed[at + 2 * (o % kLanes) + half] = to_bf16(v).bits;
          }
}

// T pooled columns of one group from the bf16 rows (channel 0, row 0 of the
// band, the tile's first column); w the group's packed pairs.
template <int P, int T, typename Out>
HISTOCNN_BF16_KERNEL void forward_tile(const uint16_t* rows, int64_t plane, int64_t row16, int in_c,
                                       int k, const uint16_t* w, __m512 bias, Out* pooled,
                                       uint8_t* argmax, int64_t column) {
  __m512 acc[P][P * T];
#pragma GCC unroll 4
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < P * T; ++j) acc[i][j] = bias;
  const int pairs = (k + 1) / 2;
  for (int c = 0; c < in_c; ++c)
    for (int ky = 0; ky < k; ++ky)
      for (int p = 0; p < pairs; ++p, w += 2 * kLanes) {
        const __m512bh weight = (__m512bh)_mm512_loadu_si512(w);
        const uint16_t* in = rows + c * plane + ky * row16 + 2 * p;
#pragma GCC unroll 4
        for (int i = 0; i < P; ++i)
#pragma GCC unroll 16
          for (int j = 0; j < P * T; ++j)
            acc[i][j] = _mm512_dpbf16_ps(acc[i][j], weight, pair16(in + i * row16 + j));
      }
  pool_tile<P, T>(acc, pooled, argmax, column);
}

template <int P>
HISTOCNN_BF16 void forward_pass(const float* x, const ConvPoolGeometry& g, const uint16_t* packed,
                                const float* bias, Bf16* pooled, uint8_t* argmax,
                                const LaneLayout& out, float* scratch) {
  constexpr int T = tile_columns<P>();
  const ScratchLayout s = scratch_layout(g);
  const int band = P + g.kernel - 1, groups = g.out_c / kLanes, ow = g.out_w();
  const int64_t plane = band * s.row16,
                per_group = int64_t(g.in_c) * g.kernel * 2 * kLanes * ((g.kernel + 1) / 2);
  const int64_t rows = int64_t(g.n) * g.out_h();
#pragma omp parallel
  {
    auto* rows16 =
        reinterpret_cast<uint16_t*>(partial_of(scratch, s, omp_get_thread_num()) + s.partial);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int n = int(r / g.out_h()), y = int(r % g.out_h());
      copy_rows(x, g, n, y * P, band, s.row16, rows16);
      for (int group = 0; group < groups; ++group) {
        const uint16_t* w = packed + group * per_group;
        const __m512 b = _mm512_loadu_ps(bias + group * kLanes);
        const int64_t at = pooled_at(out, n, group, y, 0);
        int px = 0;
        for (; px + T <= ow; px += T)
          forward_tile<P, T>(rows16 + px * P, plane, s.row16, g.in_c, g.kernel, w, b,
                             pooled + at + px * out.column, argmax + at + px * out.column,
                             out.column);
        for (; px < ow; ++px)
          forward_tile<P, 1>(rows16 + px * P, plane, s.row16, g.in_c, g.kernel, w, b,
                             pooled + at + px * out.column, argmax + at + px * out.column,
                             out.column);
      }
    }
  }
}

// The gradient row as pairs of columns: lane l of pair xp holds d[2xp][l] in
// its low half and d[2xp + 1][l] in its high half. d's values come from bf16
// tensors (or are zeros), so dropping their low 16 bits is exact.
HISTOCNN_BF16 inline void pack_pairs(const float* d, int pairs, uint32_t* out) {
  const __m512i high = _mm512_set1_epi32(int(0xffff0000u));
  for (int xp = 0; xp < pairs; ++xp) {
    const __m512i lo = _mm512_castps_si512(_mm512_loadu_ps(d + 2 * xp * kLanes));
    const __m512i hi = _mm512_castps_si512(_mm512_loadu_ps(d + (2 * xp + 1) * kLanes));
    _mm512_storeu_si512(out + xp * kLanes,
                        _mm512_or_si512(_mm512_srli_epi32(lo, 16), _mm512_and_si512(hi, high)));
  }
}

// One input channel's K x K taps over one conv row: sum over column pairs of
// d[x] * in[ky][x + kx] + d[x + 1] * in[ky][x + 1 + kx], added to dw[ky][kx].
template <int K>
HISTOCNN_BF16_KERNEL void taps_row(const uint16_t* in, int64_t row16, const uint32_t* pairs,
                                   int count, float* dw) {
  __m512 acc[K * K];
#pragma GCC unroll 25
  for (int t = 0; t < K * K; ++t) acc[t] = _mm512_setzero_ps();
  for (int xp = 0; xp < count; ++xp) {
    const __m512bh grad = (__m512bh)_mm512_loadu_si512(pairs + xp * kLanes);
#pragma GCC unroll 5
    for (int ky = 0; ky < K; ++ky)
#pragma GCC unroll 5
      for (int kx = 0; kx < K; ++kx)
        acc[ky * K + kx] =
            _mm512_dpbf16_ps(acc[ky * K + kx], grad, pair16(in + ky * row16 + 2 * xp + kx));
  }
#pragma GCC unroll 25
  for (int t = 0; t < K * K; ++t)
    _mm512_storeu_ps(dw + t * kLanes, _mm512_add_ps(_mm512_loadu_ps(dw + t * kLanes), acc[t]));
}

template <int K>
HISTOCNN_BF16 void backward_pass(const float* x, const ConvPoolGeometry& g, const Bf16* pooled,
                                 const Bf16* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                                 float* scratch) {
  const ScratchLayout s = scratch_layout(g);
  const int p = g.pool, band = p + K - 1, groups = g.out_c / kLanes, ow = g.out_w();
  const int taps = g.in_c * K * K, columns = ow * p, count = (columns + 1) / 2;
  const int64_t plane = band * s.row16, rows = int64_t(g.n) * g.out_h();
  zero_partials(scratch, s);
#pragma omp parallel
  {
    float* d = scratch + s.packed + size_t(omp_get_thread_num()) * s.per_thread;
    float* partial = partial_of(scratch, s, omp_get_thread_num());
    auto* rows16 = reinterpret_cast<uint16_t*>(partial + s.partial);
    auto* pairs = reinterpret_cast<uint32_t*>(partial + s.partial + s.rows16);
    _mm512_storeu_ps(d + columns * kLanes, _mm512_setzero_ps());  // completes the last pair
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int n = int(r / g.out_h()), y = int(r % g.out_h());
      copy_rows(x, g, n, y * p, band, s.row16, rows16);
      for (int group = 0; group < groups; ++group) {
        const int64_t at = pooled_at(out, n, group, y, 0);
        float* dw = partial + int64_t(group) * taps * kLanes;
        float* db = partial + int64_t(groups) * taps * kLanes + group * kLanes;
        for (int wy = 0; wy < p; ++wy) {
          const __m512 sum =
              expand_row(pooled + at, d_pooled + at, argmax + at, out.column, ow, p, wy, d);
          _mm512_storeu_ps(db, _mm512_add_ps(_mm512_loadu_ps(db), sum));
          pack_pairs(d, count, pairs);
          for (int c = 0; c < g.in_c; ++c)
            taps_row<K>(rows16 + c * plane + wy * s.row16, s.row16, pairs, count,
                        dw + c * K * K * kLanes);
        }
      }
    }
  }
}

}  // namespace

void forward_bf16_pairs(const float* x, const ConvPoolGeometry& g, const float* weights,
                        const float* bias, Bf16* pooled, uint8_t* argmax, const LaneLayout& out,
                        float* scratch) {
  auto* packed = reinterpret_cast<uint16_t*>(scratch);
  pack_weights(weights, g, packed);
  switch (g.pool) {
    case 2:
      return forward_pass<2>(x, g, packed, bias, pooled, argmax, out, scratch);
    case 3:
      return forward_pass<3>(x, g, packed, bias, pooled, argmax, out, scratch);
    default:
      return forward_pass<4>(x, g, packed, bias, pooled, argmax, out, scratch);
  }
}

void backward_bf16_pairs(const float* x, const ConvPoolGeometry& g, const Bf16* pooled,
                         const Bf16* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                         float* scratch) {
  switch (g.kernel) {
    case 1:
      return backward_pass<1>(x, g, pooled, d_pooled, argmax, out, scratch);
    case 2:
      return backward_pass<2>(x, g, pooled, d_pooled, argmax, out, scratch);
    case 3:
      return backward_pass<3>(x, g, pooled, d_pooled, argmax, out, scratch);
    case 4:
      return backward_pass<4>(x, g, pooled, d_pooled, argmax, out, scratch);
    default:
      return backward_pass<5>(x, g, pooled, d_pooled, argmax, out, scratch);
  }
}

#pragma GCC diagnostic pop
#endif

}  // namespace histocnn::cpu::conv_pool
