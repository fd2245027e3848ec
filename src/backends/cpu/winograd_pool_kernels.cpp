// The fused Winograd forward of a later block (see winograd_pool_kernels.h).
// Per (image, row of tiles), per group of up to kGroup tiles:
//   1. input transform: each tile's 6x6 x in_c inputs -> V[xi][tile][c];
//   2. 36 GEMMs, M[xi][tile][o] = sum over c of V[xi][tile][c] U[xi][c][o]:
//      NT tiles x 32 (or 16) output channels of accumulators in registers,
//      one weight vector loaded and one input value broadcast per FMA row;
//   3. output transform of each tile's 36 x 16 lanes -> 4x4 outputs, + bias,
//      ReLU, four 2x2 windows' maxima and argmax bytes, stored.
#include "backends/cpu/winograd_pool_kernels.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>

#include "backends/cpu/avx512.h"
#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/winograd_pool_tiling.h"
#include "core/error.h"

namespace histocnn::cpu {

// Named: unity builds put this file beside others with their own kLanes.
namespace winograd_pool {
namespace {

constexpr int kLanes = 16;  // channels per nChw16c block and per AVX-512 register

KernelIsa cap = KernelIsa::avx512;  // cap_winograd_pool (tests)

// The version that runs: the best of the machine's within the cap (none
// below AVX2: the step keeps oneDNN's convolution).
KernelIsa version() {
  return capped_kernel_isa(cap);
}

}  // namespace
}  // namespace winograd_pool

bool winograd_pool_available() {
  return winograd_pool::version() >= KernelIsa::avx2;
}
std::string winograd_pool_isa() {
  return kernel_isa_name(winograd_pool::version());
}
void cap_winograd_pool(const std::string& isa) {
  winograd_pool::cap = parse_kernel_isa(isa, "cap_winograd_pool");
}

bool winograd_pool_applies(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv) {
  const int lanes = kernel_isa_lanes(winograd_pool::version());
  if (conv.kernel != 3 || conv.pool != 2 || conv.pad < 0 || conv.pad > 1) return false;
  if (conv.in_c % lanes != 0 || conv.out_c % lanes != 0 || conv.in_c < lanes) return false;
  if (in.lanes != lanes || out.lanes != lanes) return false;
  if (in.blocks * lanes != conv.in_c || out.blocks * lanes != conv.out_c) return false;
  if (in.column != lanes || out.column != lanes) return false;  // nChw16c/8c: lanes contiguous
  const int conv_h = in.h + 2 * conv.pad - 2, conv_w = in.w + 2 * conv.pad - 2;
  return in.n == out.n && in.n > 0 && out.h == conv_h / 2 && out.w == conv_w / 2 && out.h > 0 &&
         out.w > 0;
}

size_t winograd_weights_floats(const PooledConv& conv) {
  return size_t(winograd_pool::kXi) * size_t(conv.in_c) * size_t(conv.out_c);
}

void winograd_transform_weights(const float* w, const PooledConv& conv, float* u) {
  constexpr int kAlpha = winograd_pool::kAlpha, kLanes = winograd_pool::kLanes;
  static constexpr double G[kAlpha][3] = {{1.0 / 4, 0, 0},
                                          {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                          {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                          {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                          {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                          {0, 0, 1}};
  const int in_c = conv.in_c, out_c = conv.out_c, blocks = ceil_div(out_c, kLanes);
  // Per (input channel, block of 16 output channels), the output channel
  // innermost: u's rows are contiguous in o, so the stores are whole lines
  // and the arithmetic runs over the lanes. (One (o, c) pair at a time, its
  // 36 stores out_c floats apart, took ~160 us a step for conv2 on two
  // cores: at 32 px more than the convolution.) Each element is the same
  // double expression, in the same order, as before: the same bits.
#pragma omp parallel for schedule(static)
  for (int item = 0; item < in_c * blocks; ++item) {
    const int c = item / blocks, o0 = (item % blocks) * kLanes;
    const int lanes = std::min(kLanes, out_c - o0);
    double g[9][kLanes], gg[kAlpha][3][kLanes];  // g, then G g, per lane
    for (int k = 0; k < 9; ++k)
      for (int l = 0; l < lanes; ++l) g[k][l] = w[(int64_t(o0 + l) * in_c + c) * 9 + k];
    for (int i = 0; i < kAlpha; ++i)
      for (int t = 0; t < 3; ++t)
        for (int l = 0; l < lanes; ++l)
          gg[i][t][l] = G[i][0] * g[t][l] + G[i][1] * g[3 + t][l] + G[i][2] * g[6 + t][l];
    for (int i = 0; i < kAlpha; ++i)
      for (int j = 0; j < kAlpha; ++j) {
        float* row = u + (int64_t(i * kAlpha + j) * in_c + c) * out_c + o0;
        for (int l = 0; l < lanes; ++l)
          row[l] = float(gg[i][0][l] * G[j][0] + gg[i][1][l] * G[j][1] + gg[i][2][l] * G[j][2]);
      }
  }
}

size_t winograd_pool_scratch_floats(const PooledConv& conv, int threads) {
  return size_t(std::max(threads, 1)) * winograd_pool::group_floats(conv);
}

#if HISTOCNN_HAS_AVX512_CODE

namespace winograd_pool {
namespace {

#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

using avx512::load16;
using avx512::store16;

// B^T applied to six values along one direction of an input tile.
HISTOCNN_AVX512 inline void input_1d(const __m512 d[kAlpha], __m512 t[kAlpha]) {
  const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
  const __m512 d12 = _mm512_add_ps(d[1], d[2]), d34 = _mm512_add_ps(d[3], d[4]);
  const __m512 d1m2 = _mm512_sub_ps(d[1], d[2]), d4m3 = _mm512_sub_ps(d[4], d[3]);
  const __m512 d4m2 = _mm512_sub_ps(d[4], d[2]), d3m1 = _mm512_sub_ps(d[3], d[1]);
  t[0] = _mm512_fnmadd_ps(five, d[2], _mm512_fmadd_ps(four, d[0], d[4]));
  t[1] = _mm512_fnmadd_ps(four, d12, d34);   // -4 d1 - 4 d2 + d3 + d4
  t[2] = _mm512_fmadd_ps(four, d1m2, d4m3);  //  4 d1 - 4 d2 - d3 + d4
  t[3] = _mm512_fmadd_ps(two, d3m1, d4m2);   // -2 d1 - d2 + 2 d3 + d4
  t[4] = _mm512_fnmadd_ps(two, d3m1, d4m2);  //  2 d1 - d2 - 2 d3 + d4
  t[5] = _mm512_fnmadd_ps(five, d[3], _mm512_fmadd_ps(four, d[1], d[5]));
}

// A^T applied to six values along one direction of a transformed tile.
HISTOCNN_AVX512 inline void output_1d(const __m512 m[kAlpha], __m512 s[kOut]) {
  const __m512 two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f),
               eight = _mm512_set1_ps(8.0f);
  const __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
  const __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
  s[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
  s[1] = _mm512_fmadd_ps(two, d, b);
  s[2] = _mm512_fmadd_ps(four, c, a);
  s[3] = _mm512_add_ps(_mm512_fmadd_ps(eight, d, b), m[5]);
}

// One 16-channel block of one tile: its 6x6 inputs (zero outside the map,
// which is the padding; kInside: the tile lies within it) -> v[xi *
// v_stride], xi = row * 6 + column. The next tile's new columns are
// prefetched: the rows are a map row apart, more streams than the hardware
// prefetchers follow.
template <bool kInside, typename T>
HISTOCNN_AVX512 void input_tile(const T* plane, int64_t row, int h, int w, int y0, int x0, float* v,
                                size_t v_stride) {
  __m512 rows[kAlpha][kAlpha];  // B^T d, by rows
  for (int s = 0; s < kAlpha; ++s) {
    __m512 d[kAlpha], t[kAlpha];
    const int x = x0 + s;
    for (int r = 0; r < kAlpha; ++r) {
      const int y = y0 + r;
      const int64_t at = int64_t(y) * row + int64_t(x) * kLanes;
      if (kInside) {
        d[r] = load16(plane + at);
        // A hint only: past the map's end it fetches nothing of ours.
        if (s < kOut)
          _mm_prefetch(reinterpret_cast<const char*>(plane + at + kAlpha * kLanes), _MM_HINT_T0);
      } else {
        d[r] = y >= 0 && y < h && x >= 0 && x < w ? load16(plane + at) : _mm512_setzero_ps();
      }
    }
    input_1d(d, t);
    for (int r = 0; r < kAlpha; ++r) rows[r][s] = t[r];
  }
  for (int r = 0; r < kAlpha; ++r) {
    __m512 t[kAlpha];
    input_1d(rows[r], t);
    for (int s = 0; s < kAlpha; ++s) store16(v + size_t(r * kAlpha + s) * v_stride, t[s]);
  }
}

// NT tiles x (OB x 16) output channels of one xi: m[t][o] = sum over c of
// v[t][c] u[c][o]; v rows in_c apart, u rows and m rows out_c apart.
template <int NT, int OB>
HISTOCNN_FMA_KERNEL void gemm_tiles(const float* v, const float* u, float* m, int in_c, int out_c) {
  __m512 acc[NT][OB];
  for (int t = 0; t < NT; ++t)
    for (int b = 0; b < OB; ++b) acc[t][b] = _mm512_setzero_ps();
  for (int c = 0; c < in_c; ++c) {
    __m512 w[OB];
    for (int b = 0; b < OB; ++b) w[b] = _mm512_loadu_ps(u + int64_t(c) * out_c + b * kLanes);
    for (int t = 0; t < NT; ++t) {
      const __m512 x = _mm512_set1_ps(v[int64_t(t) * in_c + c]);
      for (int b = 0; b < OB; ++b) acc[t][b] = _mm512_fmadd_ps(x, w[b], acc[t][b]);
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int b = 0; b < OB; ++b) _mm512_storeu_ps(m + int64_t(t) * out_c + b * kLanes, acc[t][b]);
}

// Every xi's GEMM for a group of NT tiles.
template <int NT>
void gemm_group(const float* v, const float* u, float* m, int in_c, int out_c) {
  for (int xi = 0; xi < kXi; ++xi) {
    const float* v_xi = v + size_t(xi) * NT * in_c;
    const float* u_xi = u + size_t(xi) * in_c * out_c;
    float* m_xi = m + size_t(xi) * NT * out_c;
    int o = 0;
    for (; o + 2 * kLanes <= out_c; o += 2 * kLanes)
      gemm_tiles<NT, 2>(v_xi, u_xi + o, m_xi + o, in_c, out_c);
    if (o < out_c) gemm_tiles<NT, 1>(v_xi, u_xi + o, m_xi + o, in_c, out_c);
  }
}

// One tile's 16 output channels from m (36 vectors m_stride apart): the
// 4x4 outputs + bias, ReLU, then the four 2x2 windows (those inside the
// pooled map) to pooled and argmax at `at` + window offsets. In bf16 each
// maximum is rounded once, and flagged by what is stored.
template <typename T>
HISTOCNN_AVX512 void output_tile(const float* m, size_t m_stride, __m512 bias, T* pooled,
                                 uint8_t* argmax, const LaneLayout& out, int64_t at, int py0,
                                 int px0) {
  __m512 cols[kOut][kAlpha];  // A^T m, by rows
  for (int j = 0; j < kAlpha; ++j) {
    __m512 col[kAlpha], s[kOut];
    for (int i = 0; i < kAlpha; ++i) col[i] = load16(m + size_t(i * kAlpha + j) * m_stride);
    output_1d(col, s);
    for (int i = 0; i < kOut; ++i) cols[i][j] = s[i];
  }
  __m512 y[kOut][kOut];
  const __m512 zero = _mm512_setzero_ps();
  for (int i = 0; i < kOut; ++i) {
    __m512 s[kOut];
    output_1d(cols[i], s);
    for (int j = 0; j < kOut; ++j) y[i][j] = _mm512_max_ps(_mm512_add_ps(s[j], bias), zero);
  }
  for (int wy = 0; wy < 2; ++wy)
    for (int wx = 0; wx < 2; ++wx) {
      if (py0 + wy >= out.h || px0 + wx >= out.w) continue;  // a window past the map
      __m512 best = y[2 * wy][2 * wx];
      __m512i where = _mm512_setzero_si512();
      for (int k = 1; k < 4; ++k) {
        const __m512 v = y[2 * wy + k / 2][2 * wx + k % 2];
        const __mmask16 larger = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);  // first max wins
        best = _mm512_mask_mov_ps(best, larger, v);
        where = _mm512_mask_mov_epi32(where, larger, _mm512_set1_epi32(k));
      }
      if constexpr (std::is_same_v<T, Bf16>) best = avx512::round16_to_bf16(best);
      where = avx512::flag_not_positive(where, best, kArgmaxNotPositive);
      const int64_t e = at + int64_t(wy) * out.row + int64_t(wx) * out.column;
      store16(pooled + e, best);
      avx512::store_bytes16(argmax + e, where);
    }
}

// A group of NT tiles (`live` of them real) of tile row ty of image img,
// starting at tile column tx0.
template <int NT, typename T>
HISTOCNN_AVX512 void run_group(const T* x, const LaneLayout& in, const float* u, const float* bias,
                               T* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g,
                               int img, int ty, int tx0, int live, float* v, float* m) {
  const int in_blocks = g.in_c / kLanes, out_blocks = g.out_c / kLanes;
  const size_t v_stride = size_t(NT) * g.in_c, m_stride = size_t(NT) * g.out_c;
  for (int b = 0; b < in_blocks; ++b) {  // a block's rows: fewer streams at once
    const T* plane = x + int64_t(img) * in.image + int64_t(b) * in.block;
    for (int t = 0; t < NT; ++t) {
      float* vt = v + size_t(t) * g.in_c + size_t(b) * kLanes;
      if (t >= live) {  // a padding tile: zeros, so its sums stay finite
        for (int xi = 0; xi < kXi; ++xi) store16(vt + xi * v_stride, _mm512_setzero_ps());
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
      output_tile(m + size_t(t) * g.out_c + size_t(b) * kLanes, m_stride, load16(bias + b * kLanes),
                  pooled, argmax, out, at, py0, px0);
    }
  }
}

#pragma GCC diagnostic pop

// The smallest group size of ours holding `live` tiles (or the largest).
int group_for(int live) {
  return live > 8 ? 12 : live > 4 ? 8 : 4;
}

template <typename T>
void run_group_avx512(const T* x, const LaneLayout& in, const float* u, const float* bias,
                      T* pooled, uint8_t* argmax, const LaneLayout& out, const Tiling& g, int img,
                      int ty, int tx0, int live, float* v, float* m) {
  switch (group_for(live)) {
    case 4:
      return run_group<4>(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
    case 8:
      return run_group<8>(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
    default:
      return run_group<12>(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, live, v, m);
  }
}

}  // namespace
}  // namespace winograd_pool

#else  // not x86-64: winograd_pool_available() is false

namespace winograd_pool {
namespace {
template <typename T>
void run_group_avx512(const T*, const LaneLayout&, const float*, const float*, T*, uint8_t*,
                      const LaneLayout&, const Tiling&, int, int, int, int, float*, float*) {}
}  // namespace
}  // namespace winograd_pool

#endif

namespace winograd_pool {
namespace {

// The forward on maps of T (float or Bf16), as winograd_pool_forward.
template <typename T>
void forward_typed(const T* x, const LaneLayout& in, const float* u, const float* bias, T* pooled,
                   uint8_t* argmax, const LaneLayout& out, const PooledConv& conv,
                   HostFloats& scratch) {
  require(winograd_pool_available() && winograd_pool_applies(in, out, conv),
          "Winograd conv+pool: called where it cannot run");
  const int threads = omp_get_max_threads();
  if (scratch.size() < winograd_pool_scratch_floats(conv, threads))
    scratch.resize(winograd_pool_scratch_floats(conv, threads));
  using RunGroup = void (*)(const T*, const LaneLayout&, const float*, const float*, T*, uint8_t*,
                            const LaneLayout&, const Tiling&, int, int, int, int, float*, float*);
  const RunGroup run = version() == KernelIsa::avx512 ? RunGroup(run_group_avx512<T>)
                                                      : RunGroup(run_group_avx2);  // T's overload
  const Tiling g = tiling_of(in, out, conv);
  const int items = g.n * g.tiles_y;
  float* base = scratch.data();
#pragma omp parallel
  {
    float* v = base + size_t(omp_get_thread_num()) * group_floats(conv);
    float* m = v + size_t(kXi) * kGroup * conv.in_c;
#pragma omp for schedule(static)
    for (int item = 0; item < items; ++item) {
      const int img = item / g.tiles_y, ty = item % g.tiles_y;
      for (int tx0 = 0; tx0 < g.tiles_x; tx0 += kGroup)
        run(x, in, u, bias, pooled, argmax, out, g, img, ty, tx0, std::min(kGroup, g.tiles_x - tx0),
            v, m);
    }
  }
}

}  // namespace
}  // namespace winograd_pool

void winograd_pool_forward(const float* x, const LaneLayout& in, const float* u, const float* bias,
                           float* pooled, uint8_t* argmax, const LaneLayout& out,
                           const PooledConv& conv, HostFloats& scratch) {
  winograd_pool::forward_typed(x, in, u, bias, pooled, argmax, out, conv, scratch);
}
void winograd_pool_forward(const Bf16* x, const LaneLayout& in, const float* u, const float* bias,
                           Bf16* pooled, uint8_t* argmax, const LaneLayout& out,
                           const PooledConv& conv, HostFloats& scratch) {
  winograd_pool::forward_typed(x, in, u, bias, pooled, argmax, out, conv, scratch);
}
void winograd_pool_forward(dnnl::memory::data_type type, const void* x, const LaneLayout& in,
                           const float* u, const float* bias, void* pooled, uint8_t* argmax,
                           const LaneLayout& out, const PooledConv& conv, HostFloats& scratch) {
  using dt = dnnl::memory::data_type;
  require(type == dt::f32 || type == dt::bf16, "Winograd conv+pool: maps of f32 or bf16 only");
  if (type == dt::bf16)
    return winograd_pool_forward(static_cast<const Bf16*>(x), in, u, bias,
                                 static_cast<Bf16*>(pooled), argmax, out, conv, scratch);
  winograd_pool_forward(static_cast<const float*>(x), in, u, bias, static_cast<float*>(pooled),
                        argmax, out, conv, scratch);
}

}  // namespace histocnn::cpu
