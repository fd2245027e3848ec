// The fused first-block kernels' AVX2 version (conv_pool_kernels.h), for
// oneDNN's 8-channel blocks on CPUs without AVX-512: the AVX-512 version's
// passes (conv_pool_kernels.cpp) on groups of 8 output channels and 16 ymm
// registers instead of 32 zmm ones.
//
// Forward: a tile of two groups and one pooled window at 2x2 (8
// accumulators: each tap's 4 broadcast inputs feed both groups, 6 loads per
// 8 multiply-adds); one group and one window at 3x3 (9); at 4x4, whose 16
// would spill, the window's rows in two passes of 2, the first maximum kept
// in between. Backward: the dense output gradient of a pooled row's P
// convolution rows, then each input channel's taps as dot products along the
// rows, up to 3 kernel rows (9 accumulators) a pass.
//
// Every value takes its terms in the AVX-512 version's order, one FMA each
// (the convolution from the bias through the taps; each weight gradient
// along the rows, then the threads' sums in thread order), so both versions
// give the same bits.
#include <omp.h>

#include <algorithm>

#include "backends/cpu/avx2.h"
#include "backends/cpu/conv_pool_scratch.h"
#include "core/bf16.h"
#include "core/error.h"

namespace histocnn::cpu::conv_pool {

#if HISTOCNN_HAS_AVX2_CODE
namespace {

constexpr int kLanes = kAvx2Lanes;

template <int P>
constexpr int tile_groups() {
  return P == 2 ? 2 : 1;
}
template <int P>
constexpr int rows_a_pass() {
  return P == 4 ? 2 : P;
}

// One pooled window of G groups: x at its first input (channel 0, row y * P,
// column x * P), w the first group's packed weights [in_c][k][k][8] (group
// j's at w + j * w_stride), bias its biases, pooled and argmax its element
// (group j's at + j * group_stride). K the kernel's size when known at
// compile time (its taps unrolled), else 0 and `kernel` it.
template <int P, int K, int G, typename Out>
HISTOCNN_AVX2 void forward_tile(const float* x, int64_t plane, int64_t in_w, int in_c, int kernel,
                                const float* w, int64_t w_stride, const float* bias, Out* pooled,
                                uint8_t* argmax, int64_t group_stride) {
  constexpr int R = rows_a_pass<P>();
  const int k = K > 0 ? K : kernel;
  const __m256 zero = _mm256_setzero_ps();
  __m256 best[G];
  __m256i where[G];
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g)  // replaced at the window's first position
    best[g] = zero, where[g] = _mm256_setzero_si256();
  for (int r0 = 0; r0 < P; r0 += R) {
    __m256 acc[G][R][P];
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g) {
      const __m256 b = _mm256_loadu_ps(bias + g * kLanes);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < P; ++j) acc[g][i][j] = b;
    }
    const float* tap_w = w;
    for (int c = 0; c < in_c; ++c)
#pragma GCC unroll 5
      for (int ky = 0; ky < k; ++ky)
#pragma GCC unroll 5
        for (int kx = 0; kx < k; ++kx, tap_w += kLanes) {
          __m256 weight[G];
#pragma GCC unroll 2
          for (int g = 0; g < G; ++g) weight[g] = _mm256_loadu_ps(tap_w + g * w_stride);
          const float* in = x + c * plane + (r0 + ky) * in_w + kx;
#pragma GCC unroll 4
          for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < P; ++j) {
              const __m256 value = _mm256_broadcast_ss(in + i * in_w + j);
#pragma GCC unroll 2
              for (int g = 0; g < G; ++g)
                acc[g][i][j] = _mm256_fmadd_ps(weight[g], value, acc[g][i][j]);
            }
        }
        // ReLU, then the window's first maximum over its positions in order.
#pragma GCC unroll 2
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < P; ++j) {
          const __m256 v = _mm256_max_ps(acc[g][i][j], zero);
          if (r0 == 0 && i == 0 && j == 0) {
            best[g] = v, where[g] = _mm256_setzero_si256();
            continue;
          }
          const __m256 larger = _mm256_cmp_ps(v, best[g], _CMP_GT_OQ);
          best[g] = _mm256_blendv_ps(best[g], v, larger);
          where[g] = _mm256_blendv_epi8(where[g], _mm256_set1_epi32((r0 + i) * P + j),
                                        _mm256_castps_si256(larger));
        }
  }
#pragma GCC unroll 2
  for (int g = 0; g < G; ++g) {
    avx2::store8_rounded(pooled + g * group_stride, best[g]);
    avx2::store_bytes8(argmax + g * group_stride,
                       avx2::flag_not_positive(where[g], best[g], kArgmaxNotPositive));
  }
}

// One pooled row of groups [group, group + G).
template <int P, int K, int G, typename Out>
HISTOCNN_AVX2 void forward_row(const float* row, const ConvPoolGeometry& g, const float* packed,
                               const float* bias, Out* pooled, uint8_t* argmax,
                               const LaneLayout& out, int n, int y, int group) {
  const int64_t plane = int64_t(g.in_h) * g.in_w,
                w_stride = int64_t(g.in_c) * g.kernel * g.kernel * kLanes;
  const int64_t at = pooled_at(out, n, group * kLanes, y, 0);
  const int64_t group_stride = G > 1 ? pooled_at(out, n, (group + 1) * kLanes, y, 0) - at : 0;
  for (int px = 0; px < g.out_w(); ++px)
    forward_tile<P, K, G>(row + px * P, plane, g.in_w, g.in_c, g.kernel, packed + group * w_stride,
                          w_stride, bias + group * kLanes, pooled + at + px * out.column,
                          argmax + at + px * out.column, group_stride);
}

template <int P, int K, typename Out>
void forward_pass(const float* x, const ConvPoolGeometry& g, const float* packed, const float* bias,
                  Out* pooled, uint8_t* argmax, const LaneLayout& out) {
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
      forward_row<P, K, G>(row, g, packed, bias, pooled, argmax, out, n, y, group);
    for (; group < groups; ++group)
      forward_row<P, K, 1>(row, g, packed, bias, pooled, argmax, out, n, y, group);
  }
}

template <typename Out>
void forward_typed(const float* x, const ConvPoolGeometry& g, const float* packed,
                   const float* bias, Out* pooled, uint8_t* argmax, const LaneLayout& out) {
  if (g.pool == 2 && g.kernel == 3)  // the paper's block, its taps unrolled
    return forward_pass<2, 3>(x, g, packed, bias, pooled, argmax, out);
  switch (g.pool) {
    case 2:
      return forward_pass<2, 0>(x, g, packed, bias, pooled, argmax, out);
    case 3:
      return forward_pass<3, 0>(x, g, packed, bias, pooled, argmax, out);
    default:
      return forward_pass<4, 0>(x, g, packed, bias, pooled, argmax, out);
  }
}

// Pooled position `at` of one group: its window's P x P dense gradient
// vectors (row wy at d + wy * row_stride, column wx at wx * 8), the gradient
// where the window's maximum is and zero elsewhere, and the part of it in
// row wy added to row_sums[wy]. A window whose maximum is not positive
// passes none: its argmax byte carries the flag, which matches no position.
template <int P, typename In>
HISTOCNN_AVX2 inline void expand_position(const In* d_pooled, const uint8_t* argmax, int64_t at,
                                          float* d, size_t row_stride, __m256 (&row_sums)[P]) {
  const __m256i where = avx2::load_bytes8(argmax + at);
  const __m256 grad = avx2::load8(d_pooled + at);
#pragma GCC unroll 4
  for (int wy = 0; wy < P; ++wy) {
    __m256 row = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int wx = 0; wx < P; ++wx) {
      const __m256 here =
          _mm256_castsi256_ps(_mm256_cmpeq_epi32(where, _mm256_set1_epi32(wy * P + wx)));
      _mm256_storeu_ps(d + wy * row_stride + wx * kLanes, _mm256_and_ps(here, grad));
      row = _mm256_or_ps(row, here);
    }
    row_sums[wy] = _mm256_add_ps(row_sums[wy], _mm256_and_ps(row, grad));
  }
}

// The dense output gradients of one group's P convolution rows under one
// pooled row (row wy at d + wy * row_stride), and each row's sum added to
// the bias gradient at db, row by row.
template <int P, typename In>
HISTOCNN_AVX2 void expand_rows_into(const In* d_pooled, const uint8_t* argmax, int64_t column,
                                    int ow, float* d, size_t row_stride, float* db) {
  __m256 row_sums[P];
#pragma GCC unroll 4
  for (int wy = 0; wy < P; ++wy) row_sums[wy] = _mm256_setzero_ps();
  for (int px = 0; px < ow; ++px)
    expand_position<P>(d_pooled, argmax, px * column, d + px * P * kLanes, row_stride, row_sums);
  __m256 bias = _mm256_loadu_ps(db);
#pragma GCC unroll 4
  for (int wy = 0; wy < P; ++wy) bias = _mm256_add_ps(bias, row_sums[wy]);
  _mm256_storeu_ps(db, bias);
}

template <typename In>
void expand_rows(const In* d_pooled, const uint8_t* argmax, int64_t column, int ow, int p, float* d,
                 size_t row_stride, float* db) {
  switch (p) {
    case 2:
      return expand_rows_into<2>(d_pooled, argmax, column, ow, d, row_stride, db);
    case 3:
      return expand_rows_into<3>(d_pooled, argmax, column, ow, d, row_stride, db);
    default:
      return expand_rows_into<4>(d_pooled, argmax, column, ow, d, row_stride, db);
  }
}

// Kernel rows a pass of taps_rows takes, and the columns it takes at a time:
// R * K sums, U gradients and a broadcast value within the 16 registers.
// (With 4 columns GCC kept one of the 3x3 kernel's sums on the stack: 33
// against 25 ms for conv1's backward at 200 px, batch 50, 2 threads,
// bench_conv1 alternated three times.)
template <int K>
constexpr int kKernelRowsAtOnce = K <= 3 ? K : 2;
constexpr int kColumnsAtOnce = 3;
static_assert(2 * 5 + kColumnsAtOnce + 1 <= 16 && 3 * 3 + kColumnsAtOnce + 1 <= 16,
              "every kernel's pass fits the registers");

// Kernel rows [0, R) of one input channel's K x K taps over one
// convolution row: sum_x d[x] * in[ky][x + kx], added to dw[ky][kx] (8
// lanes each). U columns at a time, so that each input value is broadcast
// once for the up to K taps that use it.
template <int K, int R>
HISTOCNN_AVX2 void taps_rows(const float* in, int64_t in_w, const float* d, int columns,
                             float* dw) {
  constexpr int U = kColumnsAtOnce;
  __m256 acc[R * K];
#pragma GCC unroll 15
  for (int t = 0; t < R * K; ++t) acc[t] = _mm256_setzero_ps();
  int x = 0;
  for (; x + U <= columns; x += U) {
    __m256 grad[U];
#pragma GCC unroll 4
    for (int j = 0; j < U; ++j) grad[j] = _mm256_loadu_ps(d + (x + j) * kLanes);
#pragma GCC unroll 3
    for (int ky = 0; ky < R; ++ky)
#pragma GCC unroll 8
      for (int u = 0; u < U + K - 1; ++u) {
        const __m256 value = _mm256_broadcast_ss(in + ky * in_w + x + u);
#pragma GCC unroll 5
        for (int kx = 0; kx < K; ++kx)
          if (u - kx >= 0 && u - kx < U)
            acc[ky * K + kx] = _mm256_fmadd_ps(grad[u - kx], value, acc[ky * K + kx]);
      }
  }
  for (; x < columns; ++x) {
    const __m256 grad = _mm256_loadu_ps(d + x * kLanes);
#pragma GCC unroll 3
    for (int ky = 0; ky < R; ++ky)
#pragma GCC unroll 5
      for (int kx = 0; kx < K; ++kx)
        acc[ky * K + kx] =
            _mm256_fmadd_ps(grad, _mm256_broadcast_ss(in + ky * in_w + x + kx), acc[ky * K + kx]);
  }
#pragma GCC unroll 15
  for (int t = 0; t < R * K; ++t) {
    float* sum = dw + t * kLanes;
    _mm256_storeu_ps(sum, _mm256_add_ps(_mm256_loadu_ps(sum), acc[t]));
  }
}

// All K x K taps of one input channel over one convolution row.
template <int K>
void taps_row(const float* in, int64_t in_w, const float* d, int columns, float* dw) {
  constexpr int R = kKernelRowsAtOnce<K>;
  int ky = 0;
  for (; ky + R <= K; ky += R)
    taps_rows<K, R>(in + ky * in_w, in_w, d, columns, dw + ky * K * kLanes);
  if constexpr (K % R != 0)
    taps_rows<K, K % R>(in + ky * in_w, in_w, d, columns, dw + ky * K * kLanes);
}

template <int K, typename In>
void backward_pass(const float* x, const ConvPoolGeometry& g, const In* d_pooled,
                   const uint8_t* argmax, const LaneLayout& out, float* scratch) {
  const ScratchLayout s = avx2_scratch_layout(g);
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
    float* d = scratch + s.rows_of(me);           // the group's P dense gradient rows
    float* partial = scratch + s.partial_of(me);  // [group][taps][8], then [group][8]
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int n = int(r / g.out_h()), y = int(r % g.out_h());
      for (int group = 0; group < groups; ++group) {
        float* dw = partial + int64_t(group) * taps * kLanes;
        float* db = partial + int64_t(groups) * taps * kLanes + group * kLanes;
        const int64_t at = pooled_at(out, n, group * kLanes, y, 0);
        expand_rows(d_pooled + at, argmax + at, out.column, ow, p, d, s.row, db);
        for (int wy = 0; wy < p; ++wy) {
          const float* in = x + n * image + int64_t(y * p + wy) * g.in_w;
          for (int c = 0; c < g.in_c; ++c)
            taps_row<K>(in + c * plane, g.in_w, d + wy * s.row, ow * p, dw + c * K * K * kLanes);
        }
      }
    }
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

}  // namespace

void forward_avx2(const float* x, const ConvPoolGeometry& g, const float* packed, const float* bias,
                  dnnl::memory::data_type type, void* pooled, uint8_t* argmax,
                  const LaneLayout& out) {
  if (type == dnnl::memory::data_type::bf16)
    return forward_typed(x, g, packed, bias, static_cast<Bf16*>(pooled), argmax, out);
  forward_typed(x, g, packed, bias, static_cast<float*>(pooled), argmax, out);
}

void backward_avx2(const float* x, const ConvPoolGeometry& g, dnnl::memory::data_type type,
                   const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                   float* scratch) {
  if (type == dnnl::memory::data_type::bf16)
    return backward_typed(x, g, static_cast<const Bf16*>(d_pooled), argmax, out, scratch);
  backward_typed(x, g, static_cast<const float*>(d_pooled), argmax, out, scratch);
}

#else  // not x86-64: conv_pool_available() is false

void forward_avx2(const float*, const ConvPoolGeometry&, const float*, const float*,
                  dnnl::memory::data_type, void*, uint8_t*, const LaneLayout&) {
  require(false, "fused conv+pool: x86-64 kernels only");
}
void backward_avx2(const float*, const ConvPoolGeometry&, dnnl::memory::data_type, const void*,
                   const uint8_t*, const LaneLayout&, float*) {
  require(false, "fused conv+pool: x86-64 kernels only");
}

#endif

}  // namespace histocnn::cpu::conv_pool
