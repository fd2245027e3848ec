// The pooled weight gradient of pooled_wgrad_kernels.h: a portable version
// and an AVX-512 one (chosen at run time) for oneDNN's 16-channel blocks,
// whose sums for one output channel (kernel x kernel taps x 16 or 32
// channels) stay in vector registers while it walks a tile.
#include "backends/cpu/pooled_wgrad_kernels.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "backends/cpu/avx512.h"
#include "core/bf16.h"

namespace histocnn::cpu {
namespace {

bool portable_only = false;  // set_portable_pooled_wgrad (tests)

// A tile of pooled positions: its input (at 2x2 and kernel 3, 6 rows of 34
// pixels; 26 KB for conv2's 32 channels in fp32) stays in a core's L1 cache
// while every output channel of the thread visits it. (Bands of 4 whole
// rows, 127 KB from L2, measured the same: the scan over the positions, not
// the loads, bounds the kernel; docs/results/cpu-pooled-wgrad.md.)
constexpr int kTileRows = 2, kTileCols = 16;

// A term: its gradient and where its window's maximum is in the conv output.
struct Term {
  float g;
  int y, x;
};

// Where a window's maximum is, by its argmax byte: (row, column) in the
// window, looked up rather than divided per term.
struct WindowOffsets {
  int8_t dy[64], dx[64];
  explicit WindowOffsets(int pool) {
    for (int a = 0; a < pool * pool; ++a) dy[a] = int8_t(a / pool), dx[a] = int8_t(a % pool);
  }
};

// One output channel's terms of image n, pooled rows [py0, py1) and
// columns [px0, px1), into its sums: acc[tap * stride + c] (stride: the
// layout's channels, padding ones included) and bias. plane: the channel's
// first pooled element of image n.
struct Tile {
  int n, py0, py1, px0, px1, o;
  int64_t plane;
  float* acc;
  float* bias;
  const WindowOffsets* window;
  // Room for the tile's terms (kTileRows x kTileCols), compacted: where
  // each patch starts in the image, and its gradient.
  struct Position {
    int y, x;
  } * positions;
  float* gradients;
};

template <typename T>
bool term_at(const T* pooled, const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
             int pool, const Tile& b, int py, int px, Term& t) {
  const int64_t j = b.plane + int64_t(py) * out.row + int64_t(px) * out.column;
  const float g = load(pooled, j) > 0 ? load(d_pooled, j) : 0.0f;
  if (g == 0.0f) return false;
  const int at = argmax[j];
  t = {g, py * pool + b.window->dy[at], px * pool + b.window->dx[at]};
  return true;
}

template <typename T>
void tile_portable(const T* src, const LaneLayout& in, const T* pooled, const T* d_pooled,
                   const uint8_t* argmax, const LaneLayout& out, const PooledConv& k,
                   const Tile& b) {
  const int stride = in.blocks * in.lanes;
  float bias = *b.bias;
  for (int py = b.py0; py < b.py1; ++py)
    for (int px = b.px0; px < b.px1; ++px) {
      Term t;
      if (!term_at(pooled, d_pooled, argmax, out, k.pool, b, py, px, t)) continue;
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
// K x K taps of CB 16-channel blocks (nChw16c: a block's 16 channels of a
// pixel are contiguous) in K * K * CB registers.
template <int K, int CB, typename T>
HISTOCNN_AVX512 void tile_avx512(const T* src, const LaneLayout& in, const T* pooled,
                                 const T* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                                 const PooledConv& k, const Tile& b) {
  constexpr int kStride = CB * 16;
  // Fully unrolled, so that every sum stays in its register (a runtime tap
  // index would put the array on the stack).
  __m512 a[K * K][CB];
#pragma GCC unroll 32
  for (int t = 0; t < K * K; ++t)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) a[t][cb] = _mm512_loadu_ps(b.acc + t * kStride + cb * 16);
  const T* image = src + int64_t(b.n) * in.image;
  // A term's products, its patch inside the map: `p` its first element
  // (the taps' offsets from it are the same for every term).
  auto add_patch = [&](const T* p, __m512 g) HISTOCNN_AVX512 {
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
  };
  // At the map's border (padding): its first element is (y0, x0), negative
  // there; only the taps inside the map add anything.
  auto add_border_patch = [&](const int y0, const int x0, __m512 g) HISTOCNN_AVX512 {
#pragma GCC unroll 8
    for (int r = 0; r < K; ++r)
#pragma GCC unroll 8
      for (int s = 0; s < K; ++s) {
        if (y0 + r < 0 || y0 + r >= in.h || x0 + s < 0 || x0 + s >= in.w) continue;
        const T* q = image + int64_t(y0 + r) * in.row + int64_t(x0 + s) * in.column;
#pragma GCC unroll 4
        for (int cb = 0; cb < CB; ++cb)
          a[r * K + s][cb] =
              _mm512_fmadd_ps(g, avx512::load16(q + cb * in.block), a[r * K + s][cb]);
      }
  };
  // First the tile's terms whose patch lies inside the map, compacted
  // without a branch per position (whether a pooled value is positive is
  // data: a branch on it mispredicts), in order; a border term (padding)
  // goes through the checked path at once.
  float bias = *b.bias;
  int count = 0;
  for (int py = b.py0; py < b.py1; ++py)
    for (int px = b.px0; px < b.px1; ++px) {
      const int64_t j = b.plane + int64_t(py) * out.row + int64_t(px) * out.column;
      const float g = load(pooled, j) > 0 ? load(d_pooled, j) : 0.0f;
      const int at = argmax[j];
      const int y0 = py * k.pool + b.window->dy[at] - k.pad;
      const int x0 = px * k.pool + b.window->dx[at] - k.pad;
      if (y0 >= 0 && x0 >= 0 && y0 + K <= in.h && x0 + K <= in.w) {
        b.positions[count] = {y0, x0};
        b.gradients[count] = g;
        count += g != 0.0f;
      } else if (g != 0.0f) {
        bias += g;
        add_border_patch(y0, x0, _mm512_set1_ps(g));
      }
    }
  for (int i = 0; i < count; ++i) {
    bias += b.gradients[i];
    add_patch(image + int64_t(b.positions[i].y) * in.row + int64_t(b.positions[i].x) * in.column,
              _mm512_set1_ps(b.gradients[i]));
  }
  *b.bias = bias;
#pragma GCC unroll 32
  for (int t = 0; t < K * K; ++t)
#pragma GCC unroll 4
    for (int cb = 0; cb < CB; ++cb) _mm512_storeu_ps(b.acc + t * kStride + cb * 16, a[t][cb]);
}
#pragma GCC diagnostic pop

// AVX-512 where oneDNN runs its own AVX-512 kernels too: capped lower
// (ONEDNN_MAX_CPU_ISA=AVX2, as the golden-run tests do), the step's bits do
// not depend on which x86 CPU runs it.
bool use_avx512(const LaneLayout& in, const PooledConv& k) {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto avx512_core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return !portable_only && avx512::available() && (isa & avx512_core) == avx512_core &&
         in.lanes == 16 && ((k.kernel == 3 && in.blocks <= 2) || (k.kernel == 5 && in.blocks == 1));
}
#else
bool use_avx512(const LaneLayout&, const PooledConv&) {
  return false;
}
#endif

template <typename T>
void run_tile(const T* src, const LaneLayout& in, const T* pooled, const T* d_pooled,
              const uint8_t* argmax, const LaneLayout& out, const PooledConv& k, const Tile& b,
              bool avx) {
#if HISTOCNN_HAS_AVX512_CODE
  if (avx) {
    if (k.kernel == 3 && in.blocks == 1)
      return tile_avx512<3, 1>(src, in, pooled, d_pooled, argmax, out, k, b);
    if (k.kernel == 3) return tile_avx512<3, 2>(src, in, pooled, d_pooled, argmax, out, k, b);
    return tile_avx512<5, 1>(src, in, pooled, d_pooled, argmax, out, k, b);
  }
#endif
  (void)avx;
  tile_portable(src, in, pooled, d_pooled, argmax, out, k, b);
}

// Each thread takes a contiguous share of the output channels and walks
// image by image, tile by tile, each of its channels in turn.
template <typename T>
void run(const T* src, const LaneLayout& in, const T* pooled, const T* d_pooled,
         const uint8_t* argmax, const LaneLayout& out, const PooledConv& k, float* dw, float* db,
         bool accumulate) {
  const int taps = k.kernel * k.kernel, stride = in.blocks * in.lanes;
  const bool avx = use_avx512(in, k);
  const WindowOffsets window(k.pool);
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), me = omp_get_thread_num();
    const int o0 = int(int64_t(k.out_c) * me / threads);
    const int o1 = int(int64_t(k.out_c) * (me + 1) / threads);
    std::vector<float> acc(size_t(std::max(o1 - o0, 0)) * size_t(taps) * size_t(stride), 0.0f);
    std::vector<float> bias(size_t(std::max(o1 - o0, 0)), 0.0f);
    std::vector<Tile::Position> positions(size_t(kTileRows) * kTileCols);
    std::vector<float> gradients(positions.size());
    for (int n = 0; n < out.n; ++n)
      for (int py0 = 0; py0 < out.h; py0 += kTileRows)
        for (int px0 = 0; px0 < out.w; px0 += kTileCols)
          for (int o = o0; o < o1; ++o) {
            const size_t i = size_t(o - o0);
            const int64_t plane =
                int64_t(n) * out.image + int64_t(o / out.lanes) * out.block + o % out.lanes;
            run_tile(src, in, pooled, d_pooled, argmax, out, k,
                     Tile{n, py0, std::min(py0 + kTileRows, out.h), px0,
                          std::min(px0 + kTileCols, out.w), o, plane,
                          acc.data() + i * size_t(taps) * size_t(stride), &bias[i], &window,
                          positions.data(), gradients.data()},
                     avx);
          }
    for (int o = o0; o < o1; ++o) {
      const float* a = acc.data() + size_t(o - o0) * size_t(taps) * size_t(stride);
      for (int c = 0; c < k.in_c; ++c)
        for (int t = 0; t < taps; ++t) {
          float& w = dw[(int64_t(o) * k.in_c + c) * taps + t];
          w = (accumulate ? w : 0.0f) + a[t * stride + c];
        }
      db[o] = (accumulate ? db[o] : 0.0f) + bias[size_t(o - o0)];
    }
  }
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

void pooled_weight_gradient(dnnl::memory::data_type type, const void* src, const LaneLayout& in,
                            const void* pooled, const void* d_pooled, const uint8_t* argmax,
                            const LaneLayout& out, const PooledConv& conv, float* dw, float* db,
                            bool accumulate) {
  if (type == dnnl::memory::data_type::bf16)
    return run(static_cast<const Bf16*>(src), in, static_cast<const Bf16*>(pooled),
               static_cast<const Bf16*>(d_pooled), argmax, out, conv, dw, db, accumulate);
  run(static_cast<const float*>(src), in, static_cast<const float*>(pooled),
      static_cast<const float*>(d_pooled), argmax, out, conv, dw, db, accumulate);
}

std::string pooled_wgrad_isa(const LaneLayout& in, const PooledConv& conv) {
  return use_avx512(in, conv) ? "avx512" : "portable";
}

void set_portable_pooled_wgrad(bool portable) {
  portable_only = portable;
}

}  // namespace histocnn::cpu
