// The fused first-block kernels (see conv_pool_kernels.h): which version
// runs, the weights packed and the threads' sums added for both, and the
// AVX-512 version's passes (the AVX2 one's are in conv_pool_avx2.cpp). Both
// passes run OpenMP over (image, pooled row) and, inside, over groups of 16
// output channels, one AVX-512 register of lanes each.
//
// Forward: a tile of T pooled columns keeps its pool x (pool * T) convolution
// outputs of G groups in registers (at 2x2: 2 x 6 outputs of two groups, 24
// registers) while the in_c * kernel^2 taps stream by: each tap loads G
// weight vectors and broadcasts one input value per output, which feeds the
// G groups. Then ReLU, the window maximum and its argmax, and two stores.
//
// Backward: per pooled row, its gradient is expanded into the dense output
// gradient of its P convolution rows (16 lanes x columns, in L1), the bias
// gradient summed from it, and every tap's weight gradient accumulated as a dot
// product along the row: kernel^2 accumulators per input channel, a few
// columns at a time so that each input value is broadcast once.
#include "backends/cpu/conv_pool_kernels.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "backends/cpu/avx512.h"
#include "backends/cpu/conv_pool_scratch.h"
#include "backends/cpu/kernel_isa.h"
#include "core/error.h"

namespace histocnn::cpu {

using conv_pool::pooled_at;
using conv_pool::ScratchLayout;

namespace {

constexpr int kLanes = 16;  // output channels per AVX-512 group (one register)

// The AVX-512 version's backward takes up to two groups at once
// (kGroupsAtOnce below).
constexpr int kGroupsAtOnceMost = 2;
ScratchLayout avx512_scratch_layout(const ConvPoolGeometry& g) {
  return conv_pool::scratch_layout(g, kLanes, kGroupsAtOnceMost);
}

KernelIsa conv_pool_cap = KernelIsa::avx512;  // cap_conv_pool (tests)

// The version that runs: the best of the machine's within the cap; never the
// portable one (there is none: the step keeps oneDNN's convolution).
KernelIsa conv_pool_version() {
  return capped_kernel_isa(conv_pool_cap);
}

}  // namespace

bool conv_pool_available() {
  return conv_pool_version() >= KernelIsa::avx2;
}
std::string conv_pool_isa() {
  return kernel_isa_name(conv_pool_version());
}
void cap_conv_pool(const std::string& isa) {
  conv_pool_cap = parse_kernel_isa(isa, "cap_conv_pool");
}

std::string conv_pool_unsupported(const ConvPoolGeometry& g, const LaneLayout& pooled) {
  const int lanes = kernel_isa_lanes(conv_pool_version());
  if (g.in_c < 1 || g.in_c > 4) return "more than 4 input channels";
  if (g.kernel < 1 || g.kernel > 5) return "kernel outside 1-5";
  if (g.pool < 2 || g.pool > 4) return "pool outside 2-4";
  if (g.out_c % lanes != 0) return "output channels not a multiple of " + std::to_string(lanes);
  if (g.out_h() < 1 || g.out_w() < 1) return "no whole pooling window";
  if (pooled.lanes % lanes != 0)
    return "pooled layout without " + std::to_string(lanes) + "-lane groups";
  if (pooled.n != g.n || pooled.h != g.out_h() || pooled.w != g.out_w() ||
      pooled.blocks * pooled.lanes < g.out_c)
    return "pooled layout of another shape";
  // The kernels write only the block's channels, never the zeros oneDNN
  // keeps in the padding lanes.
  if (pooled.blocks * pooled.lanes != g.out_c) return "pooled layout with padding channels";
  return "";
}

size_t conv_pool_scratch_floats(const ConvPoolGeometry& g, int threads) {
  // Enough for either version (a cap may change which one runs).
  const auto floats = [&](const ScratchLayout& s) {
    return s.packed + size_t(std::max(threads, 1)) * s.per_thread;
  };
  return std::max(floats(avx512_scratch_layout(g)), floats(conv_pool::avx2_scratch_layout(g)));
}

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

using avx512::load16;

// The forward tile: G groups of 16 output channels over T pooled columns,
// G x P x (P * T) accumulators. At 2x2 two groups of three columns (24
// registers): each tap's broadcast input value then feeds both groups, 14
// loads per 24 multiply-adds instead of 17 per 16 with one group of four.
template <int P>
constexpr int tile_groups() {
  return P == 2 ? 2 : 1;
}
template <int P>
constexpr int tile_columns() {
  return P == 2 ? 3 : (16 / (P * P) > 0 ? 16 / (P * P) : 1);
}

// T pooled columns of G groups: x at the tile's first input (channel 0, row
// y * P, column x * P), w the first group's packed weights [in_c][k][k][16]
// (group j's at w + j * w_stride), bias its biases, pooled and argmax its
// first pooled element (group j's at + j * group_stride).
template <int P, int T, int G, typename Out>
HISTOCNN_FMA_KERNEL void forward_tile(const float* x, int64_t plane, int64_t in_w, int in_c, int k,
                                      const float* w, int64_t w_stride, const float* bias,
                                      Out* pooled, uint8_t* argmax, int64_t column,
                                      int64_t group_stride) {
  __m512 acc[G][P][P * T];
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g) {
    const __m512 b = _mm512_loadu_ps(bias + g * kLanes);
#pragma GCC unroll 4
    for (int i = 0; i < P; ++i)
#pragma GCC unroll 16
      for (int j = 0; j < P * T; ++j) acc[g][i][j] = b;
  }
  for (int c = 0; c < in_c; ++c)
    for (int ky = 0; ky < k; ++ky)
      for (int kx = 0; kx < k; ++kx, w += kLanes) {
        __m512 weight[G];
#pragma GCC unroll 2
        for (int g = 0; g < G; ++g) weight[g] = _mm512_loadu_ps(w + g * w_stride);
        const float* in = x + c * plane + ky * in_w + kx;
#pragma GCC unroll 4
        for (int i = 0; i < P; ++i)
#pragma GCC unroll 16
          for (int j = 0; j < P * T; ++j) {
            const __m512 value = _mm512_set1_ps(in[i * in_w + j]);
#pragma GCC unroll 2
            for (int g = 0; g < G; ++g)
              acc[g][i][j] = _mm512_fmadd_ps(weight[g], value, acc[g][i][j]);
          }
      }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      __m512 best = _mm512_max_ps(acc[g][0][t * P], zero);  // ReLU, then the first maximum
      __m512i where = _mm512_setzero_si512();
#pragma GCC unroll 16
      for (int i = 0; i < P; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < P; ++j) {
          if (i == 0 && j == 0) continue;
          const __m512 v = _mm512_max_ps(acc[g][i][t * P + j], zero);
          const __mmask16 larger = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
          best = _mm512_mask_mov_ps(best, larger, v);
          where = _mm512_mask_mov_epi32(where, larger, _mm512_set1_epi32(i * P + j));
        }
      where = avx512::flag_not_positive(where, best, kArgmaxNotPositive);
      avx512::store16_rounded(pooled + g * group_stride + t * column, best);
      avx512::store_bytes16(argmax + g * group_stride + t * column, where);
    }
}

// One pooled row of groups [group, group + G): T columns a tile, then one.
template <int P, int G, typename Out>
HISTOCNN_AVX512 void forward_row(const float* row, const ConvPoolGeometry& g, const float* packed,
                                 const float* bias, Out* pooled, uint8_t* argmax,
                                 const LaneLayout& out, int n, int y, int group) {
  constexpr int T = tile_columns<P>();
  const int64_t plane = int64_t(g.in_h) * g.in_w,
                w_stride = int64_t(g.in_c) * g.kernel * g.kernel * kLanes;
  const float* w = packed + group * w_stride;
  const int64_t at = pooled_at(out, n, group * kLanes, y, 0);
  const int64_t group_stride = G > 1 ? pooled_at(out, n, (group + 1) * kLanes, y, 0) - at : 0;
  const int ow = g.out_w();
  int px = 0;
  for (; px + T <= ow; px += T)
    forward_tile<P, T, G>(row + px * P, plane, g.in_w, g.in_c, g.kernel, w, w_stride,
                          bias + group * kLanes, pooled + at + px * out.column,
                          argmax + at + px * out.column, out.column, group_stride);
  for (; px < ow; ++px)
    forward_tile<P, 1, G>(row + px * P, plane, g.in_w, g.in_c, g.kernel, w, w_stride,
                          bias + group * kLanes, pooled + at + px * out.column,
                          argmax + at + px * out.column, out.column, group_stride);
}

template <int P, typename Out>
HISTOCNN_AVX512 void forward_pass(const float* x, const ConvPoolGeometry& g, const float* packed,
                                  const float* bias, Out* pooled, uint8_t* argmax,
                                  const LaneLayout& out) {
  constexpr int G = tile_groups<P>();
  const int64_t image = int64_t(g.in_h) * g.in_w * g.in_c;
  const int groups = g.out_c / kLanes;
  const int64_t rows = int64_t(g.n) * g.out_h();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const int n = int(r / g.out_h()), y = int(r % g.out_h());
    const float* row = x + n * image + int64_t(y) * P * g.in_w;
    int group = 0;
    for (; group + G <= groups; group += G)
      forward_row<P, G>(row, g, packed, bias, pooled, argmax, out, n, y, group);
    for (; group < groups; ++group)
      forward_row<P, 1>(row, g, packed, bias, pooled, argmax, out, n, y, group);
  }
}

// Pooled position `at` of one group: writes the P x P dense gradient
// vectors of its window (row wy at d + wy * row_stride, column wx at wx *
// 16), its gradient where the window's maximum is and zero elsewhere, and
// adds to row_sums[wy] the part of its gradient that landed in row wy. A
// window whose maximum is not positive passes none: its argmax byte carries
// the flag, which matches no position, so the pooled map is never read.
template <int P, typename In>
HISTOCNN_AVX512 inline void expand_position(const In* d_pooled, const uint8_t* argmax, int64_t at,
                                            float* d, size_t row_stride, __m512 (&row_sums)[P]) {
  const __m512i where = avx512::load_bytes16(argmax + at);
  const __m512 grad = load16(d_pooled + at);
#pragma GCC unroll 4
  for (int wy = 0; wy < P; ++wy) {
    __mmask16 row = 0;
#pragma GCC unroll 4
    for (int wx = 0; wx < P; ++wx) {
      const __mmask16 here = _mm512_cmpeq_epi32_mask(where, _mm512_set1_epi32(wy * P + wx));
      _mm512_storeu_ps(d + wy * row_stride + wx * kLanes, _mm512_maskz_mov_ps(here, grad));
      row = _kor_mask16(row, here);
    }
    row_sums[wy] = _mm512_mask_add_ps(row_sums[wy], row, row_sums[wy], grad);
  }
}

// The dense output gradients of the P convolution rows of one pooled row,
// for one group: row wy (out_w * P vectors) at d + wy * row_stride; then
// each row's sum added to the bias gradient at db, row by row (each summed
// position by position, as when each row had its own pass: the same bits).
// One pass for the P rows with P unrolled; a pass a row with a loop over the
// window's columns and a chain of P dependent adds a position took a fifth
// of the backward.
template <int P, typename In>
HISTOCNN_AVX512 inline void expand_rows_into(const In* d_pooled, const uint8_t* argmax,
                                             int64_t column, int ow, float* d, size_t row_stride,
                                             float* db) {
  __m512 row_sums[P];
#pragma GCC unroll 4
  for (int wy = 0; wy < P; ++wy) row_sums[wy] = _mm512_setzero_ps();
  for (int px = 0; px < ow; ++px)
    expand_position<P>(d_pooled, argmax, px * column, d + px * P * kLanes, row_stride, row_sums);
  __m512 bias = _mm512_loadu_ps(db);
#pragma GCC unroll 4
  for (int wy = 0; wy < P; ++wy) bias = _mm512_add_ps(bias, row_sums[wy]);
  _mm512_storeu_ps(db, bias);
}

template <typename In>
HISTOCNN_AVX512 inline void expand_rows(const In* d_pooled, const uint8_t* argmax, int64_t column,
                                        int ow, int p, float* d, size_t row_stride, float* db) {
  switch (p) {
    case 2:
      return expand_rows_into<2>(d_pooled, argmax, column, ow, d, row_stride, db);
    case 3:
      return expand_rows_into<3>(d_pooled, argmax, column, ow, d, row_stride, db);
    default:
      return expand_rows_into<4>(d_pooled, argmax, column, ow, d, row_stride, db);
  }
}

// Columns a pass of taps takes at a time, and the groups of output channels
// whose taps share each broadcast input value: two where both groups' sums
// and gradients, with the value, fit the 32 registers (kernel <= 3), else one.
template <int K>
constexpr int kColumnsAtOnce = K <= 3 ? 4 : 2;
template <int K>
constexpr int kGroupsAtOnce = 2 * (K * K + kColumnsAtOnce<K>) < 32 ? 2 : 1;
static_assert(kGroupsAtOnce<1> <= kGroupsAtOnceMost,
              "the scratch holds the rows of that many groups");

// One input channel's K x K taps over one row, for G groups of output
// channels at once: sum_x d_g[x] * in[ky][x + kx], added to dw_g[ky][kx]
// (16 lanes each; group g's row at d + g * d_stride, its sums at dw + g *
// dw_stride). U columns at a time, so that each input value is broadcast
// once for the up to K taps and G groups that use it: U + K - 1 broadcasts
// and G * U gradient loads per G * K * K * U multiply-adds.
template <int K, int G>
HISTOCNN_FMA_KERNEL void taps_row(const float* in, int64_t in_w, const float* d, size_t d_stride,
                                  int columns, float* dw, size_t dw_stride) {
  constexpr int U = kColumnsAtOnce<K>;  // G * (K * K + U) + 1 registers of 32
  static_assert(G * (K * K + U) + 1 <= 32, "the sums and gradients fit the registers");
  __m512 acc[G][K * K];
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 25
    for (int t = 0; t < K * K; ++t) acc[g][t] = _mm512_setzero_ps();
  int x = 0;
  for (; x + U <= columns; x += U) {
    __m512 grad[G][U];
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
      for (int j = 0; j < U; ++j) grad[g][j] = _mm512_loadu_ps(d + g * d_stride + (x + j) * kLanes);
#pragma GCC unroll 5
    for (int ky = 0; ky < K; ++ky)
#pragma GCC unroll 8
      for (int u = 0; u < U + K - 1; ++u) {
        const __m512 value = _mm512_set1_ps(in[ky * in_w + x + u]);
#pragma GCC unroll 5
        for (int kx = 0; kx < K; ++kx)
#pragma GCC unroll 2
          for (int g = 0; g < G; ++g)
            if (u - kx >= 0 && u - kx < U)
              acc[g][ky * K + kx] = _mm512_fmadd_ps(grad[g][u - kx], value, acc[g][ky * K + kx]);
      }
  }
  for (; x < columns; ++x)
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g) {
      const __m512 grad = _mm512_loadu_ps(d + g * d_stride + x * kLanes);
#pragma GCC unroll 5
      for (int ky = 0; ky < K; ++ky)
#pragma GCC unroll 5
        for (int kx = 0; kx < K; ++kx)
          acc[g][ky * K + kx] =
              _mm512_fmadd_ps(grad, _mm512_set1_ps(in[ky * in_w + x + kx]), acc[g][ky * K + kx]);
    }
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g)
#pragma GCC unroll 25
    for (int t = 0; t < K * K; ++t) {
      float* sum = dw + g * dw_stride + t * kLanes;
      _mm512_storeu_ps(sum, _mm512_add_ps(_mm512_loadu_ps(sum), acc[g][t]));
    }
}

template <int K, typename In>
HISTOCNN_AVX512 void backward_pass(const float* x, const ConvPoolGeometry& g, const In* d_pooled,
                                   const uint8_t* argmax, const LaneLayout& out, float* scratch) {
  const ScratchLayout s = avx512_scratch_layout(g);
  const int64_t plane = int64_t(g.in_h) * g.in_w, image = plane * g.in_c;
  const int groups = g.out_c / kLanes, taps = g.in_c * K * K, p = g.pool, ow = g.out_w();
  const int64_t rows = int64_t(g.n) * g.out_h();
  // Every thread's sums start at zero, also those of threads the team may
  // not use: conv_pool_backward adds them all.
  for (int t = 0; t < omp_get_max_threads(); ++t) {
    float* partial = scratch + s.partial_of(t);
    std::fill(partial, partial + s.partial, 0.0f);
  }
#pragma omp parallel
  {
    const int me = omp_get_thread_num();
    float* d = scratch + s.rows_of(me);           // the dense gradient rows, s.rows
    float* partial = scratch + s.partial_of(me);  // [group][taps][16], then [group][16]
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int n = int(r / g.out_h()), y = int(r % g.out_h());
      for (int group = 0; group < groups; group += kGroupsAtOnce<K>) {
        const int take = std::min(kGroupsAtOnce<K>, groups - group);
        float* dw = partial + int64_t(group) * taps * kLanes;
        float* db = partial + int64_t(groups) * taps * kLanes + group * kLanes;
        // Group j's row wy at d + (j * p + wy) * s.row.
        for (int j = 0; j < take; ++j) {
          const int64_t at = pooled_at(out, n, (group + j) * kLanes, y, 0);
          expand_rows(d_pooled + at, argmax + at, out.column, ow, p, d + j * p * s.row, s.row,
                      db + j * kLanes);
        }
        for (int wy = 0; wy < p; ++wy) {
          const float* in = x + n * image + int64_t(y * p + wy) * g.in_w;
          const float* d_row = d + wy * s.row;
          const size_t d_stride = size_t(p) * s.row;
          for (int c = 0; c < g.in_c; ++c) {
            float* dw_c = dw + c * K * K * kLanes;
            if constexpr (kGroupsAtOnce<K> == 2)
              if (take == 2) {
                taps_row<K, 2>(in + c * plane, g.in_w, d_row, d_stride, ow * p, dw_c,
                               size_t(taps) * kLanes);
                continue;
              }
            taps_row<K, 1>(in + c * plane, g.in_w, d_row, d_stride, ow * p, dw_c,
                           size_t(taps) * kLanes);
          }
        }
      }
    }
  }
}

template <typename Out>
void forward_typed(const float* x, const ConvPoolGeometry& g, const float* packed,
                   const float* bias, Out* pooled, uint8_t* argmax, const LaneLayout& out) {
  switch (g.pool) {
    case 2:
      return forward_pass<2>(x, g, packed, bias, pooled, argmax, out);
    case 3:
      return forward_pass<3>(x, g, packed, bias, pooled, argmax, out);
    default:
      return forward_pass<4>(x, g, packed, bias, pooled, argmax, out);
  }
}

template <typename In>
void backward_typed(const float* x, const ConvPoolGeometry& g, const In* d_pooled,
                    const uint8_t* argmax, const LaneLayout& out, float* scratch) {
  switch (g.kernel) {
    case 1:
      return backward_pass<1>(x, g, d_pooled, argmax, out, scratch);
    case 2:
      return backward_pass<2>(x, g, d_pooled, argmax, out, scratch);
    case 3:
      return backward_pass<3>(x, g, d_pooled, argmax, out, scratch);
    case 4:
      return backward_pass<4>(x, g, d_pooled, argmax, out, scratch);
    default:
      return backward_pass<5>(x, g, d_pooled, argmax, out, scratch);
  }
}

void forward_avx512(const float* x, const ConvPoolGeometry& g, const float* packed,
                    const float* bias, dnnl::memory::data_type type, void* pooled, uint8_t* argmax,
                    const LaneLayout& out) {
  if (type == dnnl::memory::data_type::bf16)
    return forward_typed(x, g, packed, bias, static_cast<Bf16*>(pooled), argmax, out);
  forward_typed(x, g, packed, bias, static_cast<float*>(pooled), argmax, out);
}

void backward_avx512(const float* x, const ConvPoolGeometry& g, dnnl::memory::data_type type,
                     const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                     float* scratch) {
  if (type == dnnl::memory::data_type::bf16)
    return backward_typed(x, g, static_cast<const Bf16*>(d_pooled), argmax, out, scratch);
  backward_typed(x, g, static_cast<const float*>(d_pooled), argmax, out, scratch);
}

}  // namespace
#pragma GCC diagnostic pop
#else  // not x86-64: conv_pool_available() is false

namespace {
void forward_avx512(const float*, const ConvPoolGeometry&, const float*, const float*,
                    dnnl::memory::data_type, void*, uint8_t*, const LaneLayout&) {}
void backward_avx512(const float*, const ConvPoolGeometry&, dnnl::memory::data_type, const void*,
                     const uint8_t*, const LaneLayout&, float*) {}
}  // namespace

#endif

void conv_pool_forward(const float* x, const ConvPoolGeometry& g, const float* weights,
                       const float* bias, dnnl::memory::data_type type, void* pooled,
                       uint8_t* argmax, const LaneLayout& out, float* scratch) {
  require(conv_pool_available() && conv_pool_unsupported(g, out).empty(),
          "fused conv+pool: called where it cannot run");
  const KernelIsa isa = conv_pool_version();
  const int lanes = kernel_isa_lanes(isa);
  // Weights OIHW -> [group][in_c][k][k][lanes]: one load per tap.
  const int taps = g.in_c * g.kernel * g.kernel;
  for (int o = 0; o < g.out_c; ++o)
    for (int t = 0; t < taps; ++t)
      scratch[(int64_t(o / lanes) * taps + t) * lanes + o % lanes] = weights[o * taps + t];
  if (isa == KernelIsa::avx512)
    return forward_avx512(x, g, scratch, bias, type, pooled, argmax, out);
  conv_pool::forward_avx2(x, g, scratch, bias, type, pooled, argmax, out);
}

void conv_pool_backward(const float* x, const ConvPoolGeometry& g, dnnl::memory::data_type type,
                        const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                        float* d_weights, float* d_bias, float* scratch) {
  require(conv_pool_available() && conv_pool_unsupported(g, out).empty(),
          "fused conv+pool: called where it cannot run");
  const KernelIsa isa = conv_pool_version();
  const int lanes = kernel_isa_lanes(isa);
  if (isa == KernelIsa::avx512)
    backward_avx512(x, g, type, d_pooled, argmax, out, scratch);
  else
    conv_pool::backward_avx2(x, g, type, d_pooled, argmax, out, scratch);
  // The threads' partial sums, added in thread order (reproducible).
  const ScratchLayout s =
      isa == KernelIsa::avx512 ? avx512_scratch_layout(g) : conv_pool::avx2_scratch_layout(g);
  const int taps = g.in_c * g.kernel * g.kernel, groups = g.out_c / lanes;
  std::fill(d_weights, d_weights + int64_t(g.out_c) * taps, 0.0f);
  std::fill(d_bias, d_bias + g.out_c, 0.0f);
  for (int t = 0; t < omp_get_max_threads(); ++t) {
    const float* partial = scratch + s.partial_of(t);
    for (int o = 0; o < g.out_c; ++o) {
      const int group = o / lanes, lane = o % lanes;
      for (int k = 0; k < taps; ++k)
        d_weights[o * taps + k] += partial[(int64_t(group) * taps + k) * lanes + lane];
      d_bias[o] += partial[int64_t(groups) * taps * lanes + group * lanes + lane];
    }
  }
}

}  // namespace histocnn::cpu
