// The pooled weight gradient of pooled_wgrad_kernels.h: a portable version
// and an AVX-512 one (chosen at run time) for oneDNN's 16-channel blocks,
// whose sums for one output channel (kernel x kernel taps x 16 or 32
// channels) stay in vector registers while it walks a tile; the AVX2 one
// for its 8-channel blocks is pooled_wgrad_avx2.cpp.
#include "backends/cpu/pooled_wgrad_kernels.h"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "backends/cpu/avx2.h"
#include "backends/cpu/avx512.h"
#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/pooled_wgrad_tile.h"
#include "core/bf16.h"

namespace histocnn::cpu {
namespace {

KernelIsa wgrad_cap = KernelIsa::avx512;  // cap_pooled_wgrad (tests)

using pooled_wgrad::kTileCols;
using pooled_wgrad::kTileRows;
using pooled_wgrad::Tile;
using pooled_wgrad::WindowOffsets;

// A term: its gradient and where its window's maximum is in the conv output.
struct Term {
  float g;
  int y, x;
};

template <typename T>
bool term_at(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out, int pool,
             const Tile& b, int py, int px, Term& t) {
  const int64_t j = b.plane + int64_t(py) * out.row + int64_t(px) * out.column;
  const float g = argmax_passes(argmax[j]) ? load(d_pooled, j) : 0.0f;
  if (g == 0.0f) return false;
  const int at = argmax[j];
  t = {g, py * pool + b.window->dy[at], px * pool + b.window->dx[at]};
  return true;
}

template <typename T>
void tile_portable(const T* src, const LaneLayout& in, const T* d_pooled, const uint8_t* argmax,
                   const LaneLayout& out, const PooledConv& k, const Tile& b) {
  const int stride = in.blocks * in.lanes;
  float bias = *b.bias;
  for (int py = b.py0; py < b.py1; ++py)
    for (int px = b.px0; px < b.px1; ++px) {
      Term t;
      if (!term_at(d_pooled, argmax, out, k.pool, b, py, px, t)) continue;
      bias += t.g;
      for (int r = 0; r < k.kernel; ++r) {
        const int iy = t.y + r - k.pad;
        if (iy < 0 || iy >= in.h) continue;
        for (int s = 0; s < k.kernel; ++s) {
          const int ix = t.x + s - k.pad;
          if (ix < 0 || ix >= in.w) continue;
          const int64_t base =
              int64_t(b.n) * in.image + int64_t(iy) * in.row + int64_t(ix) * in.column;
          float* a = b.acc + (r * k.kernel + s) * stride;
          for (int c = 0; c < k.in_c; ++c)
            a[c] += t.g * load(src, base + int64_t(c / in.lanes) * in.block + c % in.lanes);
        }
      }
    }
  *b.bias = bias;
}

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// A tile's terms for the 16 output channels of one block, found in one
// pass over the tile's positions, 16 lanes at a time. Scanning each
// channel's positions on its own (a scalar load of the pooled value, its
// gradient and its argmax byte per channel and position, 16 floats apart,
// and the window's offset looked up) took ~43 % of the kernel at conv2's
// shape with 4/7 of the values positive. Per position and lane: the
// gradient and where its patch starts in the image, and per lane a mask of
// the positions that hold an interior term (its patch inside the map), which
// the lane's channel walks bit by bit: no branch per position, no list to
// compact (that compaction was ~15 % of the kernel). Border terms (padding:
// rare) go to lists of their own.
struct BlockTerms {
  static constexpr int kMax = kTileRows * kTileCols;
  alignas(64) uint32_t interior[16];  // per lane: bit p set where position p has an interior term
  alignas(64) float gradient[kMax][16];
  alignas(64) int32_t offset[kMax][16];
  int border[16];
  int border_y[16][kMax], border_x[16][kMax];
  float border_gradient[16][kMax];
  // Where the terms read their inputs (scan_block and channel_terms):
  // pixel (y, x) at (y - origin_y) * row + (x - origin_x) * column of the
  // image, in the frame's layout; a bf16 tile's inputs widened to fp32 here
  // first (widen_tile), the fp32 ones read where they are (origin 0).
  int origin_y = 0, origin_x = 0;
  HostFloats widened;
};

// The terms of block `ob`'s lanes in `lanes` over tile b (b.o unused);
// requires pool <= 4 (its window offsets in one vector table) and a patch's
// offset within an image below 2^31 (use_avx512 checks both).
template <typename T>
HISTOCNN_AVX512 void scan_block(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                                const LaneLayout& in, const PooledConv& k, const Tile& b, int ob,
                                __mmask16 lanes, BlockTerms& terms) {
  const __m512 zero = _mm512_setzero_ps();
  const __m512i dy = _mm512_cvtepi8_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.window->dy)));  // offsets 0..15: pool <= 4
  const __m512i dx =
      _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.window->dx)));
  const __m512i row = _mm512_set1_epi32(int32_t(in.row)),
                column = _mm512_set1_epi32(int32_t(in.column));
  const __m512i y_last = _mm512_set1_epi32(in.h - k.kernel),
                x_last = _mm512_set1_epi32(in.w - k.kernel);
  const __m512i origin_y = _mm512_set1_epi32(terms.origin_y),
                origin_x = _mm512_set1_epi32(terms.origin_x);
  for (int l = 0; l < 16; ++l) terms.border[l] = 0;
  const int64_t plane = int64_t(b.n) * out.image + int64_t(ob) * out.block;
  static_assert(BlockTerms::kMax <= 32, "a lane's positions in one 32-bit mask");
  __m512i interior = _mm512_setzero_si512();
  int p = 0;
  for (int py = b.py0; py < b.py1; ++py)
    for (int px = b.px0; px < b.px1; ++px, ++p) {
      const int64_t j = plane + int64_t(py) * out.row + int64_t(px) * out.column;
      // As term_at: an argmax byte without the flag (a positive pooled
      // value) and a non-zero gradient. (The permutes read the position's
      // low 4 bits alone.)
      const __m512 d = avx512::load16(d_pooled + j);
      const __m512i at = avx512::load_bytes16(argmax + j);
      __mmask16 on = _mm512_mask_testn_epi32_mask(lanes, at, _mm512_set1_epi32(kArgmaxNotPositive));
      on = _mm512_mask_cmp_ps_mask(on, d, zero, _CMP_NEQ_UQ);
      const __m512i y0 = _mm512_add_epi32(_mm512_set1_epi32(py * k.pool - k.pad),
                                          _mm512_permutexvar_epi32(at, dy));
      const __m512i x0 = _mm512_add_epi32(_mm512_set1_epi32(px * k.pool - k.pad),
                                          _mm512_permutexvar_epi32(at, dx));
      const __mmask16 inside = _mm512_cmpge_epi32_mask(y0, _mm512_setzero_si512()) &
                               _mm512_cmpge_epi32_mask(x0, _mm512_setzero_si512()) &
                               _mm512_cmple_epi32_mask(y0, y_last) &
                               _mm512_cmple_epi32_mask(x0, x_last);
      _mm512_store_ps(terms.gradient[p], d);
      interior = _mm512_mask_or_epi32(interior, __mmask16(on & inside), interior,
                                      _mm512_set1_epi32(int32_t(1u << p)));
      _mm512_store_si512(
          terms.offset[p],
          _mm512_add_epi32(_mm512_mullo_epi32(_mm512_sub_epi32(y0, origin_y), row),
                           _mm512_mullo_epi32(_mm512_sub_epi32(x0, origin_x), column)));
      for (auto edge = __mmask16(on & ~inside); edge; edge = __mmask16(edge & (edge - 1))) {
        const int l = __builtin_ctz(edge), i = terms.border[l]++;
        terms.border_y[l][i] = py * k.pool + b.window->dy[argmax[j + l]] - k.pad;
        terms.border_x[l][i] = px * k.pool + b.window->dx[argmax[j + l]] - k.pad;
        terms.border_gradient[l][i] = load(d_pooled, j + l);
      }
    }
  _mm512_store_si512(terms.interior, interior);
}

// Lane l's terms into its output channel's sums (acc, bias): K x K taps of
// CB 16-channel blocks (nChw16c: a block's 16 channels of a pixel are
// contiguous) in K * K * CB registers. The border terms first, then the
// interior ones, each in scan order (the order of the portable version
// where there is no padding).
template <int K, int CB, typename T>
HISTOCNN_AVX512 void channel_terms(const T* image, const LaneLayout& in, const BlockTerms& terms,
                                   int l, float* acc, float* bias_sum) {
  constexpr int kStride = CB * 16;
  // Fully unrolled, so that every sum stays in its register (a runtime tap
  // index would put the array on the stack).
  __m512 a[K * K][CB];
#pragma GCC unroll 32
  for (int t = 0; t < K * K; ++t)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) a[t][cb] = _mm512_loadu_ps(acc + t * kStride + cb * 16);
  float bias = *bias_sum;
  for (int i = 0; i < terms.border[l]; ++i) {
    const float g = terms.border_gradient[l][i];
    bias += g;
    const int y0 = terms.border_y[l][i], x0 = terms.border_x[l][i];
#pragma GCC unroll 8
    for (int r = 0; r < K; ++r)
#pragma GCC unroll 8
      for (int s = 0; s < K; ++s) {
        if (y0 + r < 0 || y0 + r >= in.h || x0 + s < 0 || x0 + s >= in.w) continue;
        const T* q = image + int64_t(y0 + r - terms.origin_y) * in.row +
                     int64_t(x0 + s - terms.origin_x) * in.column;
#pragma GCC unroll 4
        for (int cb = 0; cb < CB; ++cb)
          a[r * K + s][cb] = _mm512_fmadd_ps(_mm512_set1_ps(g), avx512::load16(q + cb * in.block),
                                             a[r * K + s][cb]);
      }
  }
  for (uint32_t left = terms.interior[l]; left; left &= left - 1) {
    const int at = __builtin_ctz(left);
    bias += terms.gradient[at][l];
    const __m512 g = _mm512_set1_ps(terms.gradient[at][l]);
    const T* p = image + terms.offset[at][l];
#pragma GCC unroll 8
    for (int r = 0; r < K; ++r)
#pragma GCC unroll 8
      for (int s = 0; s < K; ++s) {
        const T* q = p + int64_t(r) * in.row + int64_t(s) * in.column;
#pragma GCC unroll 4
        for (int cb = 0; cb < CB; ++cb)
          a[r * K + s][cb] =
              _mm512_fmadd_ps(g, avx512::load16(q + cb * in.block), a[r * K + s][cb]);
      }
  }
  *bias_sum = bias;
#pragma GCC unroll 32
  for (int t = 0; t < K * K; ++t)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) _mm512_storeu_ps(acc + t * kStride + cb * 16, a[t][cb]);
}

template <typename T>
HISTOCNN_AVX512 void channel_terms_of(const T* image, const LaneLayout& in, const PooledConv& k,
                                      const BlockTerms& terms, int l, float* acc, float* bias) {
  if (k.kernel == 3 && in.blocks == 1) return channel_terms<3, 1>(image, in, terms, l, acc, bias);
  if (k.kernel == 3) return channel_terms<3, 2>(image, in, terms, l, acc, bias);
  channel_terms<5, 1>(image, in, terms, l, acc, bias);
}

// Tile b's inputs, every pixel of the map a term of it reads (rows from
// its first window's top to its last window's bottom + kernel - 1, columns
// likewise), widened from bf16 to fp32 in terms.widened: `frame` then lays
// them out (its own row, column and block; in's map size, for the bounds)
// from terms.origin. Widened in every term's 9 loads (a shift and a move
// each), the bf16 gradient took 1.36x fp32's time at conv2's shape; once a
// tile, each pixel is widened once for all the tile's output channels.
HISTOCNN_AVX512 const float* widen_tile(const Bf16* src, const LaneLayout& in, const PooledConv& k,
                                        const Tile& b, BlockTerms& terms, LaneLayout& frame) {
  const int y0 = std::max(0, b.py0 * k.pool - k.pad),
            y1 = std::min(in.h, b.py1 * k.pool - k.pad + k.kernel - 1);
  const int x0 = std::max(0, b.px0 * k.pool - k.pad),
            x1 = std::min(in.w, b.px1 * k.pool - k.pad + k.kernel - 1);
  frame.column = 16, frame.row = int64_t(std::max(x1 - x0, 0)) * 16;
  frame.block = int64_t(std::max(y1 - y0, 0)) * frame.row;
  const size_t floats = size_t(frame.block) * size_t(in.blocks);
  if (terms.widened.size() < floats) terms.widened.resize(floats);
  float* to = terms.widened.data();
  const Bf16* image = src + int64_t(b.n) * in.image;
  for (int cb = 0; cb < in.blocks; ++cb)
    for (int y = y0; y < y1; ++y) {
      const Bf16* from = image + cb * in.block + int64_t(y) * in.row;
      float* row = to + cb * frame.block + int64_t(y - y0) * frame.row;
      for (int x = x0; x < x1; ++x)
        avx512::store16(row + (x - x0) * 16, avx512::load16(from + int64_t(x) * in.column));
    }
  terms.origin_y = y0, terms.origin_x = x0;
  return to;
}

// An item's output channels [o0, o1) over tile b: each 16-channel block
// they touch scanned once, then each channel's terms.
template <typename T>
HISTOCNN_AVX512 void tile_avx512(const T* src, const LaneLayout& in, const T* d_pooled,
                                 const uint8_t* argmax, const LaneLayout& out, const PooledConv& k,
                                 const Tile& b, int o0, int o1, BlockTerms& terms) {
  const int64_t per_channel = int64_t(k.kernel) * k.kernel * in.blocks * in.lanes;
  LaneLayout frame = in;  // where the terms read their inputs
  const float* image;
  if constexpr (std::is_same_v<T, float>) {
    image = src + int64_t(b.n) * in.image;
    terms.origin_y = terms.origin_x = 0;
  } else {
    image = widen_tile(src, in, k, b, terms, frame);
  }
  for (int ob = o0 / 16; ob * 16 < o1; ++ob) {
    const int first = std::max(o0, ob * 16), last = std::min(o1, ob * 16 + 16);
    const auto lanes = __mmask16(((1u << (last - first)) - 1u) << (first - ob * 16));
    scan_block(d_pooled, argmax, out, frame, k, b, ob, lanes, terms);
    for (int o = first; o < last; ++o)
      channel_terms_of(image, frame, k, terms, o - ob * 16, b.acc + (o - o0) * per_channel,
                       b.bias + (o - o0));
  }
}
#pragma GCC diagnostic pop

// Each version only where oneDNN runs its own kernels of that ISA too
// (machine_kernel_isa): capped lower, the step's bits do not depend on which
// x86 CPU runs it.
bool use_avx512(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  return machine_kernel_isa() >= KernelIsa::avx512 && in.lanes == 16 && out.lanes == 16 &&
         k.pool <= 4 && in.image < (int64_t(1) << 31) &&
         ((k.kernel == 3 && in.blocks <= 2) || (k.kernel == 5 && in.blocks == 1));
}
#else
struct BlockTerms {};
bool use_avx512(const LaneLayout&, const LaneLayout&, const PooledConv&) {
  return false;
}
#endif

bool use_avx2(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  return machine_kernel_isa() >= KernelIsa::avx2 && pooled_wgrad::avx2_fits(in, out, k);
}

KernelIsa wgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& k) {
  if (wgrad_cap >= KernelIsa::avx512 && use_avx512(in, out, k)) return KernelIsa::avx512;
  if (wgrad_cap >= KernelIsa::avx2 && use_avx2(in, out, k)) return KernelIsa::avx2;
  return KernelIsa::portable;
}

// The kernel's inputs, as pooled_weight_gradient takes them.
template <typename T>
struct WgradInputs {
  const T* src;
  const LaneLayout& in;
  const T* d_pooled;
  const uint8_t* argmax;
  const LaneLayout& out;
  const PooledConv& k;
  const WindowOffsets& window;
  KernelIsa isa;
};

// One output channel's sums: kernel^2 taps x in's channels (padding ones
// included), tap-major.
size_t channel_floats(const LaneLayout& in, const PooledConv& k) {
  return size_t(k.kernel * k.kernel) * size_t(in.blocks * in.lanes);
}

// One item's partial sums: its channels' sums and their biases, rounded up
// to whole 64-byte lines.
size_t item_floats(const LaneLayout& in, const PooledConv& k, const PooledWgradSplit& split) {
  const size_t channels = size_t(split.channels);
  return (channels * channel_floats(in, k) + channels + 15) / 16 * 16;
}

// The items' partial sums: none where each set is one item.
size_t scratch_floats(const LaneLayout& in, const PooledConv& k, const PooledWgradSplit& split) {
  return split.partials() ? size_t(split.items()) * item_floats(in, k, split) : 0;
}

// Item `item` of the split into `part` (zeroed first): its channels over
// its images, tile by tile, each channel's terms in (image, tile, position)
// order. The channel sets of one band of images are neighbours in item
// order, so they run at once while the band's input is in cache (set-major
// order read conv2's input twice from memory at batch 50: 1.35x the time).
template <typename T>
void run_item(const WgradInputs<T>& a, const PooledWgradSplit& split, int item, float* part,
              [[maybe_unused]] BlockTerms& terms) {
  const PooledConv& k = a.k;
  const int set = item % split.sets, unit = item / split.sets;
  const int band = unit % split.bands, image_group = unit / split.bands;
  const int o0 = set * split.channels, o1 = std::min(k.out_c, o0 + split.channels);
  const size_t per_channel = channel_floats(a.in, k);
  float* bias = part + size_t(split.channels) * per_channel;
  std::fill(part, part + item_floats(a.in, k, split), 0.0f);
  const int n0 = image_group * split.images_per_item;
  const int n1 = std::min(a.out.n, n0 + split.images_per_item);
  const int py_end = std::min(a.out.h, (band + 1) * split.band_rows);
  for (int n = n0; n < n1; ++n)
    for (int py0 = band * split.band_rows; py0 < py_end; py0 += kTileRows)
      for (int px0 = 0; px0 < a.out.w; px0 += kTileCols) {
        Tile tile{n,
                  py0,
                  std::min(py0 + kTileRows, py_end),
                  px0,
                  std::min(px0 + kTileCols, a.out.w),
                  o0,
                  0,
                  part,
                  bias,
                  &a.window};
#if HISTOCNN_HAS_AVX512_CODE
        if (a.isa == KernelIsa::avx512) {
          tile_avx512(a.src, a.in, a.d_pooled, a.argmax, a.out, k, tile, o0, o1, terms);
          continue;
        }
#endif
        if (a.isa == KernelIsa::avx2) {
          pooled_wgrad::tile_avx2(a.src, a.in, a.d_pooled, a.argmax, a.out, k, tile, o0, o1);
          continue;
        }
        for (int o = o0; o < o1; ++o) {
          tile.o = o;
          tile.plane =
              int64_t(n) * a.out.image + int64_t(o / a.out.lanes) * a.out.block + o % a.out.lanes;
          tile.acc = part + size_t(o - o0) * per_channel;
          tile.bias = bias + (o - o0);
          tile_portable(a.src, a.in, a.d_pooled, a.argmax, a.out, k, tile);
        }
      }
}

// Output channel o's sums into dw (OIHW) and db: its set's partials added
// in item order, `units` of them `stride` floats apart from the one at
// `first` (the set's first item's partial sums), in `sum` (per_channel
// floats of the calling thread).
void write_channel(const float* first, int units, size_t stride, const PooledWgradSplit& split,
                   const LaneLayout& in, const PooledConv& k, int o, float* sum, float* dw,
                   float* db, bool accumulate) {
  const int taps = k.kernel * k.kernel, channels = in.blocks * in.lanes;
  const size_t per_channel = channel_floats(in, k);
  const size_t lane = size_t(o % split.channels);
  std::fill(sum, sum + per_channel, 0.0f);
  float bias = 0.0f;
  for (int u = 0; u < units; ++u) {
    const float* part = first + size_t(u) * stride;
    const float* channel = part + lane * per_channel;
    for (size_t j = 0; j < per_channel; ++j) sum[j] += channel[j];
    bias += part[size_t(split.channels) * per_channel + lane];
  }
  for (int c = 0; c < k.in_c; ++c)
    for (int t = 0; t < taps; ++t) {
      float& w = dw[(int64_t(o) * k.in_c + c) * taps + t];
      w = (accumulate ? w : 0.0f) + sum[t * channels + c];
    }
  db[o] = (accumulate ? db[o] : 0.0f) + bias;
}

// The threads share the items out, then the output channels for the sums.
template <typename T>
void run(const WgradInputs<T>& a, const PooledWgradSplit& split, int threads, float* dw, float* db,
         bool accumulate, float* scratch) {
  const size_t per_item = item_floats(a.in, a.k, split);
  const size_t per_channel = channel_floats(a.in, a.k);
  // Each item summed in a buffer of its thread's own, then copied to the
  // scratch where other threads add it up (summed in the scratch itself,
  // the kernel ran 10-20 % slower on 2 threads, measured: why is not
  // known). Whole units a thread, so that every thread sums every set (the
  // sets' costs differ most), each unit to the next thread free: the items'
  // costs follow the tissue, and the sums are added in item order whoever
  // made them. One item a set: its thread writes the set's sums at once,
  // with no copy and no barrier.
  const int chunk = split.partials() ? split.sets : 1;
#pragma omp parallel num_threads(threads)
  {
    [[maybe_unused]] const auto terms = std::make_unique<BlockTerms>();  // the AVX-512 scan's
    HostFloats mine(per_item);
    std::vector<float> sum(per_channel);
#pragma omp for schedule(dynamic, chunk) nowait
    for (int item = 0; item < split.items(); ++item) {
      run_item(a, split, item, mine.data(), *terms);
      if (split.partials()) {
        std::copy(mine.begin(), mine.end(), scratch + size_t(item) * per_item);
        continue;
      }
      for (int o = item * split.channels; o < std::min(a.k.out_c, (item + 1) * split.channels); ++o)
        write_channel(mine.data(), 1, 0, split, a.in, a.k, o, sum.data(), dw, db, accumulate);
    }
    if (split.partials()) {
#pragma omp barrier
#pragma omp for schedule(static)
      for (int o = 0; o < a.k.out_c; ++o)
        write_channel(scratch + size_t(o / split.channels) * per_item, split.items() / split.sets,
                      per_item * size_t(split.sets), split, a.in, a.k, o, sum.data(), dw, db,
                      accumulate);
    }
  }
}

template <typename T>
void run_typed(const void* src, const LaneLayout& in, const void* d_pooled, const uint8_t* argmax,
               const LaneLayout& out, const PooledConv& k, float* dw, float* db, bool accumulate,
               const PooledWgradSplit& split, int threads, float* scratch) {
  const WindowOffsets window(k.pool);
  const WgradInputs<T> a{
      static_cast<const T*>(src), in, static_cast<const T*>(d_pooled), argmax, out, k, window,
      wgrad_isa(in, out, k)};
  run(a, split, threads, dw, db, accumulate, scratch);
}

}  // namespace

bool pooled_wgrad_applies(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  const int conv_h = in.h + 2 * conv.pad - conv.kernel + 1;
  const int conv_w = in.w + 2 * conv.pad - conv.kernel + 1;
  return in.n == out.n && in.n > 0 && conv.pool >= 2 && conv.pool <= 8 && conv.kernel >= 1 &&
         conv.pad >= 0 && conv.in_c >= 1 && conv.out_c >= 1 && in.blocks * in.lanes >= conv.in_c &&
         out.blocks * out.lanes >= conv.out_c && out.h >= 1 && out.w >= 1 &&
         out.h * conv.pool <= conv_h && out.w * conv.pool <= conv_w;
}

PooledWgradSplit pooled_wgrad_split(const LaneLayout& out, const PooledConv& conv, int threads) {
  PooledWgradSplit s;
  // The channel blocks first: a thread's blocks share each tile's input.
  // Then, on more than one thread, the images and rows too: units of every
  // set, taken as threads come free (a set a thread, where the sets are as
  // many as the threads, waited on the costlier set and read its whole input
  // per call).
  const int groups = ceil_div(conv.out_c, PooledWgradSplit::kGroup);
  s.channels = ceil_div(groups, std::clamp(threads, 1, groups)) * PooledWgradSplit::kGroup;
  s.sets = ceil_div(conv.out_c, s.channels);
  const int rows = std::max(out.h, 1), images = std::max(out.n, 1);
  const int units =
      threads <= 1 ? 1 : ceil_div(PooledWgradSplit::kItemsPerThread * threads, s.sets);
  s.images_per_item = ceil_div(images, std::min(units, images));
  s.image_groups = ceil_div(images, s.images_per_item);
  // Bands of whole tiles (so a band's tiles are the unsplit map's), evened out.
  const int bands = std::min(ceil_div(units, s.image_groups), ceil_div(rows, kTileRows));
  s.band_rows = ceil_div(ceil_div(rows, bands), kTileRows) * kTileRows;
  s.bands = ceil_div(rows, s.band_rows);
  return s;
}

size_t pooled_wgrad_scratch_floats(const LaneLayout& in, const LaneLayout& out,
                                   const PooledConv& conv, int threads) {
  return scratch_floats(in, conv, pooled_wgrad_split(out, conv, threads));
}

void pooled_weight_gradient(dnnl::memory::data_type type, const void* src, const LaneLayout& in,
                            const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                            const PooledConv& conv, float* dw, float* db, bool accumulate,
                            HostFloats& scratch) {
  const int threads = omp_get_max_threads();
  const PooledWgradSplit split = pooled_wgrad_split(out, conv, threads);
  scratch.resize(std::max(scratch.size(), scratch_floats(in, conv, split)));
  if (type == dnnl::memory::data_type::bf16)
    return run_typed<Bf16>(src, in, d_pooled, argmax, out, conv, dw, db, accumulate, split, threads,
                           scratch.data());
  run_typed<float>(src, in, d_pooled, argmax, out, conv, dw, db, accumulate, split, threads,
                   scratch.data());
}

bool pooled_wgrad_fast(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  return pooled_wgrad_applies(in, out, conv) && wgrad_isa(in, out, conv) != KernelIsa::portable;
}

std::string pooled_wgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  return kernel_isa_name(wgrad_isa(in, out, conv));
}

void cap_pooled_wgrad(const std::string& isa) {
  wgrad_cap = parse_kernel_isa(isa, "cap_pooled_wgrad");
}

}  // namespace histocnn::cpu
