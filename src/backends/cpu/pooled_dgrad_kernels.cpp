// The pooled data gradient of pooled_dgrad_kernels.h: a portable version,
// and for kernel 3 and pool 2 an AVX-512 one in oneDNN's 16-channel blocks
// and an AVX2 one in its 8-channel blocks (chosen at run time), whose patch
// of one channel block stays in vector registers while the pooled
// position's terms are added to it.
#include "backends/cpu/pooled_dgrad_kernels.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "backends/cpu/avx2.h"
#include "backends/cpu/avx512.h"
#include "backends/cpu/kernel_isa.h"
#include "core/bf16.h"

namespace histocnn::cpu {
namespace {

KernelIsa dgrad_cap = KernelIsa::avx512;  // cap_pooled_dgrad (tests)
constexpr int kSpan = 4;                  // a patch's side: pool 2 + kernel 3 - 1

// d_src rows [y0, y1) of image n: one thread's work item.
struct DgradBand {
  int n, y0, y1;
};

int floor_div(int a, int b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// The pooled rows [first, second) whose patch reaches the band: pooled row
// p's patch spans d_src rows [p * pool - pad, p * pool - pad + span).
std::pair<int, int> pooled_rows_of(const DgradBand& b, const PooledConv& k, int pooled_h) {
  const int span = k.pool + k.kernel - 1;
  const int first = std::max(0, floor_div(b.y0 + k.pad - span, k.pool) + 1);
  const int last = std::min(pooled_h, floor_div(b.y1 - 1 + k.pad, k.pool) + 1);
  return {first, last};
}

int64_t at(const LaneLayout& l, int n, int c, int y, int x) {
  return int64_t(n) * l.image + int64_t(c / l.lanes) * l.block + int64_t(y) * l.row +
         int64_t(x) * l.column + c % l.lanes;
}

// Where a band's fp32 sums are added up: element (n, c, y, x) at
//   base + n * image + (c / lanes) * block + (y - row0) * row + x * column + c % lanes
// (`in`'s lanes, row and column). In fp32, d_src itself (in's image and
// block, row0 0); in bf16, the thread's band buffer (image 0, the band's
// blocks one after another, row0 the band's first row), which stays in
// the core's cache until it is rounded into d_src: an fp32 map of the
// call's whole d_src went to memory and back (docs/results/cpu-bf16-winograd.md).
struct SumsPlace {
  float* base;
  int64_t image, block;
  int row0;
};
int64_t sums_index(const SumsPlace& s, const LaneLayout& in, int n, int c, int y, int x) {
  return int64_t(n) * s.image + int64_t(c / in.lanes) * s.block + int64_t(y - s.row0) * in.row +
         int64_t(x) * in.column + c % in.lanes;
}

// Per thread: a position's patch of sums (the portable version).
struct DgradScratch {
  std::vector<float> patch;
};

template <typename T>
void band_portable(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out, const float* w,
                   const PooledConv& k, const SumsPlace& sums, const LaneLayout& in,
                   const DgradBand& b, DgradScratch& scratch) {
  const int stride = in.blocks * in.lanes, span = k.pool + k.kernel - 1, taps = k.kernel * k.kernel;
  const int64_t per_block = int64_t(k.out_c) * taps * in.lanes;  // arrange_dgrad_weights
  for (int y = b.y0; y < b.y1; ++y)
    for (int x = 0; x < in.w; ++x)
      for (int c = 0; c < stride; ++c) sums.base[sums_index(sums, in, b.n, c, y, x)] = 0.0f;
  std::vector<float>& patch = scratch.patch;
  patch.resize(size_t(span) * span * stride);
  const auto [first, last] = pooled_rows_of(b, k, out.h);
  for (int py = first; py < last; ++py)
    for (int px = 0; px < out.w; ++px) {
      std::fill(patch.begin(), patch.end(), 0.0f);
      bool any = false;
      // By window offset, then output channel: the AVX version's order (up
      // to 64 output channels; beyond, it sums 64 at a time).
      for (int a = 0; a < k.pool * k.pool; ++a)
        for (int o = 0; o < k.out_c; ++o) {
          const int64_t j = at(out, b.n, o, py, px);
          const float g = load(d_pooled, j);
          if (argmax[j] != a || g == 0.0f) continue;  // a flagged byte (not positive): no a
          any = true;
          for (int r = 0; r < k.kernel; ++r)
            for (int s = 0; s < k.kernel; ++s) {
              float* p = patch.data() + ((a / k.pool + r) * span + a % k.pool + s) * stride;
              const float* wt = w + (int64_t(o) * taps + r * k.kernel + s) * in.lanes;
              for (int c = 0; c < stride; ++c)
                p[c] += g * wt[c / in.lanes * per_block + c % in.lanes];
            }
        }
      if (!any) continue;
      const int y0 = py * k.pool - k.pad, x0 = px * k.pool - k.pad;
      for (int i = 0; i < span; ++i)
        for (int jx = 0; jx < span; ++jx) {
          const int y = y0 + i, x = x0 + jx;
          if (y < b.y0 || y >= b.y1 || x < 0 || x >= in.w) continue;
          const float* p = patch.data() + (i * span + jx) * stride;
          for (int c = 0; c < stride; ++c) sums.base[sums_index(sums, in, b.n, c, y, x)] += p[c];
        }
    }
}

template <typename T>
void round_band_portable(const SumsPlace& sums, T* d_src, const LaneLayout& in,
                         const DgradBand& b) {
  const int stride = in.blocks * in.lanes;
  for (int y = b.y0; y < b.y1; ++y)
    for (int x = 0; x < in.w; ++x)
      for (int c = 0; c < stride; ++c)
        store(d_src, at(in, b.n, c, y, x), sums.base[sums_index(sums, in, b.n, c, y, x)]);
}

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
using Patch = __m512[kSpan][kSpan];

// The terms of one window offset (DY, DX) among 64 output channels (bit o:
// channel first + o) into the patch of one 16-channel block, channel by
// channel in order: per term 9 FMAs, each with its weights read from memory
// (w: the block's, as arrange_dgrad_weights lays them out: a term's 9 taps
// in a row, each at an offset known at compile time).
// Walking a mask reads each gradient where the pool left it; lists of the
// terms (compressed and stored, then read back) were ~4-10 % slower.
template <int DY, int DX, typename T>
HISTOCNN_AVX512 inline __attribute__((always_inline)) void add_group(Patch& a, uint64_t mask,
                                                                     const T* d_pooled,
                                                                     int64_t position,
                                                                     int64_t out_block, int first,
                                                                     const float* w) {
  for (; mask; mask &= mask - 1) {
    const int o = first + __builtin_ctzll(mask);
    const __m512 g = _mm512_set1_ps(load(d_pooled, position + (o >> 4) * out_block + (o & 15)));
    const float* wt = w + o * 9 * 16;
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s)
        a[DY + r][DX + s] =
            _mm512_fmadd_ps(g, _mm512_loadu_ps(wt + (r * 3 + s) * 16), a[DY + r][DX + s]);
  }
}

// A pooled position's terms among the 64 output channels of blocks
// [4 * chunk, 4 * chunk + 4), per window offset (its argmax byte), as masks
// (bit o: channel 64 * chunk + o), found without a branch per channel
// (whether a pooled value is positive is data: a flagged argmax byte equals
// no offset). Returns whether there was any.
template <typename T>
HISTOCNN_AVX512 bool group_terms(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                                 int out_c, int64_t position, int chunk, uint64_t (&masks)[4]) {
  const __m512 zero = _mm512_setzero_ps();
  masks[0] = masks[1] = masks[2] = masks[3] = 0;
  for (int ob = 4 * chunk; ob < std::min(out.blocks, 4 * chunk + 4); ++ob) {
    const int64_t j = position + int64_t(ob) * out.block;
    const int live_lanes = std::min(16, out_c - ob * 16);
    const auto live = __mmask16((1u << live_lanes) - 1u);
    const __m512 d = avx512::load16(d_pooled + j);
    const __mmask16 on = _mm512_mask_cmp_ps_mask(live, d, zero, _CMP_NEQ_UQ);
    const __m512i offsets = avx512::load_bytes16(argmax + j);
    for (int v = 0; v < 4; ++v)
      masks[v] |= uint64_t(_mm512_mask_cmpeq_epi32_mask(on, offsets, _mm512_set1_epi32(v)))
                  << (16 * (ob % 4));
  }
  return (masks[0] | masks[1] | masks[2] | masks[3]) != 0;
}

// Adds the patch (its top left at y0, x0 of one block's plane of sums, whose
// first row is row0) to the sums, only the elements inside the band and the map.
HISTOCNN_AVX512 inline __attribute__((always_inline)) void flush(const Patch& a, float* plane,
                                                                 const LaneLayout& in,
                                                                 const DgradBand& b, int row0,
                                                                 int y0, int x0) {
  const bool inside = y0 >= b.y0 && y0 + kSpan <= b.y1 && x0 >= 0 && x0 + kSpan <= in.w;
#pragma GCC unroll 4
  for (int i = 0; i < kSpan; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < kSpan; ++j) {
      const int y = y0 + i, x = x0 + j;
      if (!inside && (y < b.y0 || y >= b.y1 || x < 0 || x >= in.w)) continue;
      float* p = plane + int64_t(y - row0) * in.row + int64_t(x) * in.column;
      _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a[i][j]));
    }
}

template <typename T>
HISTOCNN_AVX512 void band_avx512(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                                 const float* w, const PooledConv& k, const SumsPlace& sums,
                                 const LaneLayout& in, const DgradBand& b) {
  const int64_t per_block = int64_t(k.out_c) * 9 * 16;  // arrange_dgrad_weights
  float* image = sums.base + int64_t(b.n) * sums.image;
  // Each row zeroed just before the first patch that reaches it (or at the
  // end), while it is in L1: zeroing the whole band first sent it to L2/L3
  // and the patches read it back from there.
  int zeroed = b.y0;
  auto zero_rows_until = [&](int end) HISTOCNN_AVX512 {
    for (; zeroed < std::min(end, b.y1); ++zeroed)
      for (int cb = 0; cb < in.blocks; ++cb)
        for (int x = 0; x < in.w; ++x)
          _mm512_storeu_ps(image + cb * sums.block + int64_t(zeroed - sums.row0) * in.row +
                               int64_t(x) * in.column,
                           _mm512_setzero_ps());
  };
  const int chunks = (out.blocks + 3) / 4;
  const auto [first, last] = pooled_rows_of(b, k, out.h);
  for (int py = first; py < last; ++py) {
    zero_rows_until(py * 2 - k.pad + kSpan);
    for (int px = 0; px < out.w; ++px) {
      const int64_t position =
          int64_t(b.n) * out.image + int64_t(py) * out.row + int64_t(px) * out.column;
      // 64 output channels at a time (the paper's network has at most 64):
      // each chunk's patch added to d_src on its own.
      for (int chunk = 0; chunk < chunks; ++chunk) {
        uint64_t m[4];
        if (!group_terms(d_pooled, argmax, out, k.out_c, position, chunk, m)) continue;
        for (int cb = 0; cb < in.blocks; ++cb) {
          Patch a;
#pragma GCC unroll 4
          for (int i = 0; i < kSpan; ++i)
#pragma GCC unroll 4
            for (int j = 0; j < kSpan; ++j) a[i][j] = _mm512_setzero_ps();
          const float* wb = w + cb * per_block;
          const int first_channel = 64 * chunk;
          add_group<0, 0>(a, m[0], d_pooled, position, out.block, first_channel, wb);
          add_group<0, 1>(a, m[1], d_pooled, position, out.block, first_channel, wb);
          add_group<1, 0>(a, m[2], d_pooled, position, out.block, first_channel, wb);
          add_group<1, 1>(a, m[3], d_pooled, position, out.block, first_channel, wb);
          flush(a, image + cb * sums.block, in, b, sums.row0, py * 2 - k.pad, px * 2 - k.pad);
        }
      }
    }
  }
  zero_rows_until(b.y1);
}

// Row by row: the index arithmetic once a row (per element, its division
// by the lanes made this pass cost ~0.3x the band's sums).
HISTOCNN_AVX512 void round_band_avx512(const SumsPlace& sums, Bf16* d_src, const LaneLayout& in,
                                       const DgradBand& b) {
  for (int cb = 0; cb < in.blocks; ++cb)
    for (int y = b.y0; y < b.y1; ++y) {
      Bf16* to = d_src + at(in, b.n, cb * 16, y, 0);
      const float* from = sums.base + sums_index(sums, in, b.n, cb * 16, y, 0);
      for (int x = 0; x < in.w; ++x)
        avx512::store16_rounded(to + x * in.column, _mm512_loadu_ps(from + x * in.column));
    }
}
#pragma GCC diagnostic pop

bool dgrad_avx512(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  return machine_kernel_isa() >= KernelIsa::avx512 && in.lanes == 16 && out.lanes == 16 &&
         k.kernel == 3 && k.pool == 2;
}
#else
bool dgrad_avx512(const LaneLayout&, const LaneLayout&, const PooledConv&) {
  return false;
}
#endif

#if HISTOCNN_HAS_AVX2_CODE
// ---- AVX2: the AVX-512 version's sums on oneDNN's 8-channel blocks
// (nChw8c, its layout on AVX2 CPUs). A whole 4 x 4 patch of one block would
// take all 16 ymm registers, but a window offset's terms reach 3 of its 4
// rows: those of the top offsets (DY = 0) go into rows 0-2 (12 registers),
// then row 0 is added to the sums and row 3 takes its place for the bottom
// offsets' terms (DY = 1). Each term is thus read once per block, with its
// 9 FMAs (splitting the patch into two halves of two rows read each term
// twice, 4.5 FMAs a read). Every element's terms still come in the AVX-512
// version's order (window offset, then output channel, 64 channels at a
// time), each with one FMA, so the sums are the same bits.

// The terms of window offset (DY, DX) into its 3 x 3 of the patch.
template <int DY, int DX, typename T>
HISTOCNN_AVX2 inline __attribute__((always_inline)) void add_group_avx2(
    __m256 (&a)[kSpan][kSpan], uint64_t mask, const T* d_pooled, int64_t position,
    int64_t out_block, int first, const float* w) {
  for (; mask; mask &= mask - 1) {
    const int o = first + __builtin_ctzll(mask);
    const __m256 g = _mm256_set1_ps(load(d_pooled, position + (o >> 3) * out_block + (o & 7)));
    const float* wt = w + o * 9 * 8;
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s)
        a[DY + r][DX + s] =
            _mm256_fmadd_ps(g, _mm256_loadu_ps(wt + (r * 3 + s) * 8), a[DY + r][DX + s]);
  }
}

// group_terms on 8-channel blocks: the 64 output channels of blocks
// [8 * chunk, 8 * chunk + 8) per window offset.
template <typename T>
HISTOCNN_AVX2 bool group_terms_avx2(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                                    int out_c, int64_t position, int chunk, uint64_t (&masks)[4]) {
  masks[0] = masks[1] = masks[2] = masks[3] = 0;
  for (int ob = 8 * chunk; ob < std::min(out.blocks, 8 * chunk + 8); ++ob) {
    const int64_t j = position + int64_t(ob) * out.block;
    const unsigned live = (1u << std::min(8, out_c - ob * 8)) - 1u;
    const __m256 d = avx2::load8(d_pooled + j);
    const unsigned on =
        unsigned(_mm256_movemask_ps(_mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_NEQ_UQ))) & live;
    const __m256i offsets = avx2::load_bytes8(argmax + j);
    for (int v = 0; v < 4; ++v) {
      const __m256i is_v = _mm256_cmpeq_epi32(offsets, _mm256_set1_epi32(v));
      masks[v] |= uint64_t(unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(is_v))) & on)
                  << (8 * (ob % 8));
    }
  }
  return (masks[0] | masks[1] | masks[2] | masks[3]) != 0;
}

// Adds patch rows [I0, I1) (the patch's top left at y0, x0 of one block's
// plane of sums, whose first row is row0) to the sums, only the elements
// inside the band and the map.
template <int I0, int I1>
HISTOCNN_AVX2 inline __attribute__((always_inline)) void flush_rows(const __m256 (&a)[kSpan][kSpan],
                                                                    float* plane,
                                                                    const LaneLayout& in,
                                                                    const DgradBand& b, int row0,
                                                                    int y0, int x0) {
  const bool inside = y0 + I0 >= b.y0 && y0 + I1 <= b.y1 && x0 >= 0 && x0 + kSpan <= in.w;
#pragma GCC unroll 3
  for (int i = I0; i < I1; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < kSpan; ++j) {
      const int y = y0 + i, x = x0 + j;
      if (!inside && (y < b.y0 || y >= b.y1 || x < 0 || x >= in.w)) continue;
      float* p = plane + int64_t(y - row0) * in.row + int64_t(x) * in.column;
      _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), a[i][j]));
    }
}

// One block's patch of a pooled position: its terms, then into the sums.
template <typename T>
HISTOCNN_AVX2 inline __attribute__((always_inline)) void patch_avx2(
    const uint64_t (&m)[4], const T* d_pooled, int64_t position, int64_t out_block, int first,
    const float* wb, float* plane, const LaneLayout& in, const DgradBand& b, int row0, int y0,
    int x0) {
  __m256 a[kSpan][kSpan];
#pragma GCC unroll 3
  for (int i = 0; i < 3; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < kSpan; ++j) a[i][j] = _mm256_setzero_ps();
  add_group_avx2<0, 0>(a, m[0], d_pooled, position, out_block, first, wb);
  add_group_avx2<0, 1>(a, m[1], d_pooled, position, out_block, first, wb);
  flush_rows<0, 1>(a, plane, in, b, row0, y0, x0);
#pragma GCC unroll 4
  for (int j = 0; j < kSpan; ++j) a[3][j] = _mm256_setzero_ps();
  add_group_avx2<1, 0>(a, m[2], d_pooled, position, out_block, first, wb);
  add_group_avx2<1, 1>(a, m[3], d_pooled, position, out_block, first, wb);
  flush_rows<1, kSpan>(a, plane, in, b, row0, y0, x0);
}

template <typename T>
HISTOCNN_AVX2 void band_avx2(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                             const float* w, const PooledConv& k, const SumsPlace& sums,
                             const LaneLayout& in, const DgradBand& b) {
  const int64_t per_block = int64_t(k.out_c) * 9 * 8;  // arrange_dgrad_weights
  float* image = sums.base + int64_t(b.n) * sums.image;
  int zeroed = b.y0;  // rows zeroed while in L1, as band_avx512
  auto zero_rows_until = [&](int end) HISTOCNN_AVX2 {
    for (; zeroed < std::min(end, b.y1); ++zeroed)
      for (int cb = 0; cb < in.blocks; ++cb)
        for (int x = 0; x < in.w; ++x)
          _mm256_storeu_ps(image + cb * sums.block + int64_t(zeroed - sums.row0) * in.row +
                               int64_t(x) * in.column,
                           _mm256_setzero_ps());
  };
  const int chunks = (out.blocks + 7) / 8;
  const auto [first, last] = pooled_rows_of(b, k, out.h);
  for (int py = first; py < last; ++py) {
    zero_rows_until(py * 2 - k.pad + kSpan);
    for (int px = 0; px < out.w; ++px) {
      const int64_t position =
          int64_t(b.n) * out.image + int64_t(py) * out.row + int64_t(px) * out.column;
      for (int chunk = 0; chunk < chunks; ++chunk) {
        uint64_t m[4];
        if (!group_terms_avx2(d_pooled, argmax, out, k.out_c, position, chunk, m)) continue;
        for (int cb = 0; cb < in.blocks; ++cb)
          patch_avx2(m, d_pooled, position, out.block, 64 * chunk, w + cb * per_block,
                     image + cb * sums.block, in, b, sums.row0, py * 2 - k.pad, px * 2 - k.pad);
      }
    }
  }
  zero_rows_until(b.y1);
}

HISTOCNN_AVX2 void round_band_avx2(const SumsPlace& sums, Bf16* d_src, const LaneLayout& in,
                                   const DgradBand& b) {  // row by row, as round_band_avx512
  for (int cb = 0; cb < in.blocks; ++cb)
    for (int y = b.y0; y < b.y1; ++y) {
      Bf16* to = d_src + at(in, b.n, cb * 8, y, 0);
      const float* from = sums.base + sums_index(sums, in, b.n, cb * 8, y, 0);
      for (int x = 0; x < in.w; ++x)
        avx2::store8_rounded(to + x * in.column, _mm256_loadu_ps(from + x * in.column));
    }
}

bool dgrad_avx2(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  return machine_kernel_isa() >= KernelIsa::avx2 && in.lanes == 8 && out.lanes == 8 &&
         k.kernel == 3 && k.pool == 2;
}
#else
bool dgrad_avx2(const LaneLayout&, const LaneLayout&, const PooledConv&) {
  return false;
}
#endif

KernelIsa dgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  if (dgrad_cap >= KernelIsa::avx512 && dgrad_avx512(in, out, k)) return KernelIsa::avx512;
  if (dgrad_cap >= KernelIsa::avx2 && dgrad_avx2(in, out, k)) return KernelIsa::avx2;
  return KernelIsa::portable;
}

template <typename T>
void run_band(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out, const float* w,
              const PooledConv& k, T* d_src, const SumsPlace& sums, const LaneLayout& in,
              const DgradBand& b, DgradScratch& scratch, KernelIsa isa) {
#if HISTOCNN_HAS_AVX512_CODE
  if (isa == KernelIsa::avx512) {
    band_avx512(d_pooled, argmax, out, w, k, sums, in, b);
    if constexpr (std::is_same_v<T, Bf16>) round_band_avx512(sums, d_src, in, b);
    return;
  }
#endif
#if HISTOCNN_HAS_AVX2_CODE
  if (isa == KernelIsa::avx2) {
    band_avx2(d_pooled, argmax, out, w, k, sums, in, b);
    if constexpr (std::is_same_v<T, Bf16>) round_band_avx2(sums, d_src, in, b);
    return;
  }
#endif
  band_portable(d_pooled, argmax, out, w, k, sums, in, b, scratch);
  if constexpr (std::is_same_v<T, Bf16>) round_band_portable(sums, d_src, in, b);
}

// Bands of whole pool rows, about four a thread, no thinner than two pooled
// rows (a thinner band sums more straddling rows twice). Four, not two as
// before, so that a thread free early takes another: a band of glands costs
// more than one of background, and a vCPU of a busy host runs slower (2
// threads of the 2-core VM: the threads' times differed by 11-26 % at two
// bands a thread, statically shared; cpu-pooled-balance.md). One thread
// keeps two: it has no one to balance with.
int band_rows(const LaneLayout& in, const PooledConv& k, int threads) {
  const int wanted = threads <= 1 ? 2 : 4 * threads;
  const int per_image = std::clamp(ceil_div(wanted, in.n), 1, std::max(1, in.h / (2 * k.pool)));
  return ceil_div(ceil_div(in.h, per_image), k.pool) * k.pool;
}

template <typename T>
void run_dgrad(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out, const float* w,
               const PooledConv& k, T* d_src, const LaneLayout& in, HostFloats& sums) {
  const KernelIsa isa = dgrad_isa(in, out, k);
  const int threads = omp_get_max_threads();
  const PooledDgradBands bands = pooled_dgrad_bands(in, k, threads);
  const int items = in.n * bands.count;
  // bf16: each thread's band buffer, a band's rows of every block.
  const int64_t band_block = int64_t(bands.longest(in.h)) * in.row;
  if constexpr (!std::is_same_v<T, float>) {
    const size_t wanted = pooled_dgrad_sums_floats(in, k, threads);
    if (sums.size() < wanted) sums.resize(wanted);
  }
#pragma omp parallel
  {
    DgradScratch scratch;
    SumsPlace place{};
    if constexpr (std::is_same_v<T, float>)
      place = {d_src, in.image, in.block, 0};
    else
      place = {sums.data() + omp_get_thread_num() * band_block * in.blocks, 0, band_block, 0};
#pragma omp for schedule(dynamic, 1)
    for (int item = 0; item < items; ++item) {
      const auto [y0, y1] = bands.band(item % bands.count, in.h);
      if constexpr (!std::is_same_v<T, float>) place.row0 = y0;
      run_band(d_pooled, argmax, out, w, k, d_src, place, in, DgradBand{item / bands.count, y0, y1},
               scratch, isa);
    }
  }
}

}  // namespace

std::pair<int, int> PooledDgradBands::band(int i, int height) const {
  return {std::max(0, i * rows - shift),
          i == count - 1 ? height : std::min(height, (i + 1) * rows - shift)};
}

int PooledDgradBands::longest(int height) const {
  int most = 0;
  for (int i = 0; i < count; ++i) {
    const auto [first, end] = band(i, height);
    most = std::max(most, end - first);
  }
  return most;
}

size_t pooled_dgrad_sums_floats(const LaneLayout& in, const PooledConv& conv, int threads) {
  const PooledDgradBands bands = pooled_dgrad_bands(in, conv, threads);
  return size_t(std::max(threads, 1)) * size_t(in.blocks) * size_t(bands.longest(in.h)) *
         size_t(in.row);
}

PooledDgradBands pooled_dgrad_bands(const LaneLayout& in, const PooledConv& conv, int threads) {
  PooledDgradBands b;
  b.rows = band_rows(in, conv, threads);
  b.shift = conv.pad % conv.pool;    // (edge + pad) % pool == 0 at every edge
  b.count = ceil_div(in.h, b.rows);  // as unshifted: no band of `shift` rows at the end
  return b;
}

bool pooled_dgrad_applies(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  return pooled_wgrad_applies(in, out, conv);
}

bool pooled_dgrad_fast(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  return pooled_dgrad_applies(in, out, conv) && dgrad_isa(in, out, conv) != KernelIsa::portable;
}

void arrange_dgrad_weights(const float* oihw, const PooledConv& k, const LaneLayout& in, bool bf16,
                           float* arranged) {
  const int taps = k.kernel * k.kernel;
  for (int cb = 0; cb < in.blocks; ++cb)
    for (int o = 0; o < k.out_c; ++o)
      for (int t = 0; t < taps; ++t)
        for (int l = 0; l < in.lanes; ++l) {
          const int c = cb * in.lanes + l;
          const float v = c < k.in_c ? oihw[(int64_t(o) * k.in_c + c) * taps + t] : 0.0f;
          arranged[((int64_t(cb) * k.out_c + o) * taps + t) * in.lanes + l] =
              bf16 ? round_to_bf16(v) : v;
        }
}

void pooled_data_gradient(dnnl::memory::data_type type, const void* d_pooled, const uint8_t* argmax,
                          const LaneLayout& out, const float* arranged, const PooledConv& conv,
                          void* d_src, const LaneLayout& in, HostFloats& sums) {
  if (type == dnnl::memory::data_type::bf16)
    return run_dgrad(static_cast<const Bf16*>(d_pooled), argmax, out, arranged, conv,
                     static_cast<Bf16*>(d_src), in, sums);
  run_dgrad(static_cast<const float*>(d_pooled), argmax, out, arranged, conv,
            static_cast<float*>(d_src), in, sums);
}

std::string pooled_dgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  return kernel_isa_name(dgrad_isa(in, out, conv));
}

void cap_pooled_dgrad(const std::string& isa) {
  dgrad_cap = parse_kernel_isa(isa, "cap_pooled_dgrad");
}

}  // namespace histocnn::cpu
