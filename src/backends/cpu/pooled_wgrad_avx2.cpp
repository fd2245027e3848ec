// The pooled weight gradient's AVX2 version (pooled_wgrad_kernels.h), for
// oneDNN's 8-channel blocks on CPUs without AVX-512: the AVX-512 version's
// scan and sums (pooled_wgrad_kernels.cpp), 8 lanes at a time. There one
// output channel's 3 x 3 taps of all 32 input channels stay in 18 zmm
// registers; here that would be 36 of the 16 ymm ones, so a channel's
// terms are walked once per 8-channel input block (9 registers), the bias
// summed on the first walk. Each sum still takes its terms in the AVX-512
// version's order (border terms, then interior ones in scan order), one
// FMA each.
#include <algorithm>

#include "backends/cpu/avx2.h"
#include "backends/cpu/pooled_wgrad_tile.h"

namespace histocnn::cpu::pooled_wgrad {

#if HISTOCNN_HAS_AVX2_CODE
namespace {

constexpr int kLanes = 8;

// A tile's terms for the 8 output channels of one block (as the AVX-512
// version's BlockTerms): per position and lane the gradient and where its
// patch starts, per lane a mask of the positions with an interior term,
// and the border terms (padding) in lists.
struct BlockTerms {
  static constexpr int kMax = kTileRows * kTileCols;
  alignas(32) uint32_t interior[kLanes];
  alignas(32) float gradient[kMax][kLanes];
  alignas(32) int32_t offset[kMax][kLanes];
  int border[kLanes];
  int border_y[kLanes][kMax], border_x[kLanes][kMax];
  float border_gradient[kLanes][kMax];
};
static_assert(BlockTerms::kMax <= 32, "a lane's positions in one 32-bit mask");

// The vector of lanes whose bit is set in `lanes`.
HISTOCNN_AVX2 __m256i lane_vector(unsigned lanes) {
  const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(int(lanes)), bits), bits);
}

// The terms of block `ob`'s lanes in `lanes` over tile b; requires a pool of
// at most 2 (its window offsets in one 8-entry permute).
template <typename T>
HISTOCNN_AVX2 void scan_block(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                              const LaneLayout& in, const PooledConv& k, const Tile& b, int ob,
                              unsigned lanes, BlockTerms& terms) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i dy = _mm256_cvtepi8_epi32(
      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.window->dy)));  // offsets 0..7
  const __m256i dx =
      _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.window->dx)));
  const __m256i row = _mm256_set1_epi32(int32_t(in.row)),
                column = _mm256_set1_epi32(int32_t(in.column));
  const __m256i y_last = _mm256_set1_epi32(in.h - k.kernel),
                x_last = _mm256_set1_epi32(in.w - k.kernel);
  const __m256i flag = _mm256_set1_epi32(kArgmaxNotPositive), live = lane_vector(lanes);
  for (int l = 0; l < kLanes; ++l) terms.border[l] = 0;
  const int64_t plane = int64_t(b.n) * out.image + int64_t(ob) * out.block;
  __m256i interior = zero;
  int p = 0;
  for (int py = b.py0; py < b.py1; ++py)
    for (int px = b.px0; px < b.px1; ++px, ++p) {
      const int64_t j = plane + int64_t(py) * out.row + int64_t(px) * out.column;
      // As term_at: an argmax byte without the flag and a non-zero gradient.
      // (The permutes read the byte's low 3 bits alone.)
      const __m256 d = avx2::load8(d_pooled + j);
      const __m256i at = avx2::load_bytes8(argmax + j);
      const __m256i on = _mm256_and_si256(
          _mm256_and_si256(live, _mm256_cmpeq_epi32(_mm256_and_si256(at, flag), zero)),
          _mm256_castps_si256(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
      const __m256i y0 = _mm256_add_epi32(_mm256_set1_epi32(py * k.pool - k.pad),
                                          _mm256_permutevar8x32_epi32(dy, at));
      const __m256i x0 = _mm256_add_epi32(_mm256_set1_epi32(px * k.pool - k.pad),
                                          _mm256_permutevar8x32_epi32(dx, at));
      const __m256i outside = _mm256_or_si256(
          _mm256_or_si256(_mm256_cmpgt_epi32(zero, y0), _mm256_cmpgt_epi32(zero, x0)),
          _mm256_or_si256(_mm256_cmpgt_epi32(y0, y_last), _mm256_cmpgt_epi32(x0, x_last)));
      const __m256i inside = _mm256_andnot_si256(outside, on);
      _mm256_store_ps(terms.gradient[p], d);
      interior =
          _mm256_or_si256(interior, _mm256_and_si256(inside, _mm256_set1_epi32(int32_t(1u << p))));
      _mm256_store_si256(
          reinterpret_cast<__m256i*>(terms.offset[p]),
          _mm256_add_epi32(_mm256_mullo_epi32(y0, row), _mm256_mullo_epi32(x0, column)));
      const unsigned edge =
          unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(inside, on))));
      for (unsigned e = edge; e; e &= e - 1) {
        const int l = __builtin_ctz(e), i = terms.border[l]++;
        terms.border_y[l][i] = py * k.pool + b.window->dy[argmax[j + l]] - k.pad;
        terms.border_x[l][i] = px * k.pool + b.window->dx[argmax[j + l]] - k.pad;
        terms.border_gradient[l][i] = load(d_pooled, j + l);
      }
    }
  _mm256_store_si256(reinterpret_cast<__m256i*>(terms.interior), interior);
}

// Lane l's terms into its output channel's sums of input block cb: 3 x 3
// taps in 9 registers (acc: tap-major, `stride` floats a tap).
template <typename T>
HISTOCNN_AVX2 void block_terms(const T* image, const LaneLayout& in, const BlockTerms& terms, int l,
                               int cb, float* acc, int stride) {
  __m256 a[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) a[t] = _mm256_loadu_ps(acc + t * stride + cb * kLanes);
  const T* block = image + int64_t(cb) * in.block;
  for (int i = 0; i < terms.border[l]; ++i) {
    const __m256 g = _mm256_set1_ps(terms.border_gradient[l][i]);
    const int y0 = terms.border_y[l][i], x0 = terms.border_x[l][i];
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s) {
        if (y0 + r < 0 || y0 + r >= in.h || x0 + s < 0 || x0 + s >= in.w) continue;
        const T* q = block + int64_t(y0 + r) * in.row + int64_t(x0 + s) * in.column;
        a[r * 3 + s] = _mm256_fmadd_ps(g, avx2::load8(q), a[r * 3 + s]);
      }
  }
  // A column is one block of kLanes (avx2_fits): the taps of a row lie at
  // offsets known at compile time from the row's start.
  const int64_t row = in.row;
  for (uint32_t left = terms.interior[l]; left; left &= left - 1) {
    const int at = __builtin_ctz(left);
    const __m256 g = _mm256_set1_ps(terms.gradient[at][l]);
    const T* p = block + terms.offset[at][l];
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s)
        a[r * 3 + s] = _mm256_fmadd_ps(g, avx2::load8(p + r * row + s * kLanes), a[r * 3 + s]);
  }
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) _mm256_storeu_ps(acc + t * stride + cb * kLanes, a[t]);
}

// Lane l's bias: its terms' gradients in the order block_terms takes them.
HISTOCNN_AVX2 void bias_terms(const BlockTerms& terms, int l, float* bias_sum) {
  float bias = *bias_sum;
  for (int i = 0; i < terms.border[l]; ++i) bias += terms.border_gradient[l][i];
  for (uint32_t left = terms.interior[l]; left; left &= left - 1)
    bias += terms.gradient[__builtin_ctz(left)][l];
  *bias_sum = bias;
}

template <typename T>
HISTOCNN_AVX2 void tile(const T* src, const LaneLayout& in, const T* d_pooled,
                        const uint8_t* argmax, const LaneLayout& out, const PooledConv& k,
                        const Tile& b, int o0, int o1) {
  thread_local BlockTerms terms;  // 4.7 KB a thread, reused tile after tile
  const int stride = in.blocks * kLanes;
  const int64_t per_channel = 9 * int64_t(stride);
  const T* image = src + int64_t(b.n) * in.image;
  for (int ob = o0 / kLanes; ob * kLanes < o1; ++ob) {
    const int first = std::max(o0, ob * kLanes), last = std::min(o1, ob * kLanes + kLanes);
    const unsigned lanes = ((1u << (last - first)) - 1u) << (first - ob * kLanes);
    scan_block(d_pooled, argmax, out, in, k, b, ob, lanes, terms);
    for (int o = first; o < last; ++o) {
      float* acc = b.acc + (o - o0) * per_channel;
      bias_terms(terms, o - ob * kLanes, b.bias + (o - o0));
      for (int cb = 0; cb < in.blocks; ++cb)
        block_terms(image, in, terms, o - ob * kLanes, cb, acc, stride);
    }
  }
}

}  // namespace

bool avx2_fits(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  return avx2::available() && in.lanes == kLanes && out.lanes == kLanes && in.column == kLanes &&
         k.kernel == 3 && k.pool <= 2 && in.image < (int64_t(1) << 31);
}

void tile_avx2(const float* src, const LaneLayout& in, const float* d_pooled, const uint8_t* argmax,
               const LaneLayout& out, const PooledConv& k, const Tile& b, int o0, int o1) {
  tile(src, in, d_pooled, argmax, out, k, b, o0, o1);
}
void tile_avx2(const Bf16* src, const LaneLayout& in, const Bf16* d_pooled, const uint8_t* argmax,
               const LaneLayout& out, const PooledConv& k, const Tile& b, int o0, int o1) {
  tile(src, in, d_pooled, argmax, out, k, b, o0, o1);
}
#else
bool avx2_fits(const LaneLayout&, const LaneLayout&, const PooledConv&) {
  return false;
}
void tile_avx2(const float*, const LaneLayout&, const float*, const uint8_t*, const LaneLayout&,
               const PooledConv&, const Tile&, int, int) {}
void tile_avx2(const Bf16*, const LaneLayout&, const Bf16*, const uint8_t*, const LaneLayout&,
               const PooledConv&, const Tile&, int, int) {}
#endif

}  // namespace histocnn::cpu::pooled_wgrad
