// The CPU step's max-pool kernels (see pool_kernels.h): OpenMP over (image,
// channel block, pooled row); each task runs one row function. Three versions
// of each: AVX-512 intrinsics where the CPU has them and the lanes come in
// sixteens, AVX2 ones where they come in eights (nChw8c, oneDNN's layout on
// AVX2 CPUs), and portable loops otherwise (the project builds for any
// x86-64 unless HISTOCNN_NATIVE is on, so the vector code is chosen at run
// time). All three give the same bits: a max and a scatter round nothing.
#include "backends/cpu/pool_kernels.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/avx2.h"
#include "backends/cpu/avx512.h"
#include "backends/cpu/kernel_isa.h"

namespace histocnn::cpu {

std::optional<LaneLayout> lane_layout(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.format_kind != dnnl_blocked || d.ndims != 4 || d.offset0 != 0) return std::nullopt;
  if (d.data_type != dnnl_f32 && d.data_type != dnnl_bf16) return std::nullopt;
  for (int k : {0, 2, 3})
    if (d.dims[k] != d.padded_dims[k]) return std::nullopt;  // padded images or pixels
  const auto& b = d.format_desc.blocking;
  LaneLayout l;
  l.n = int(d.dims[0]);
  l.h = int(d.dims[2]);
  l.w = int(d.dims[3]);
  l.image = b.strides[0];
  l.block = b.strides[1];
  l.row = b.strides[2];
  l.column = b.strides[3];
  const int channels = int(d.padded_dims[1]);
  if (b.inner_nblks == 0) {
    // Plain: the channels are the lanes when they are contiguous (nhwc), else
    // each channel is a block of one lane (nchw).
    l.lanes = b.strides[1] == 1 ? channels : 1;
    l.blocks = channels / l.lanes;
    if (l.blocks == 1) l.block = 0;
  } else if (b.inner_nblks == 1 && b.inner_idxs[0] == 1) {
    l.lanes = int(b.inner_blks[0]);  // nChw16c and the like
    l.blocks = channels / l.lanes;
  } else {
    return std::nullopt;
  }
  return l;
}

bool poolable(const LaneLayout& in, const LaneLayout& out, int p) {
  return p >= 1 && p <= 8 && in.n == out.n && in.lanes == out.lanes && in.blocks == out.blocks &&
         out.h == in.h / p && out.w == in.w / p && out.h > 0 && out.w > 0;
}

namespace pool_rows {

constexpr int kChunk = 16;          // lanes per AVX-512 register of floats
constexpr int kChunk2 = 8;          // lanes per AVX2 register of floats
KernelIsa cap = KernelIsa::avx512;  // cap_pool_kernels (tests)

// One pooled row of one channel block, lane by lane: windows ox = 0..ow-1
// over the p input rows starting at x.
template <typename T>
inline __attribute__((always_inline)) void forward_row(const T* x, int64_t row, int64_t column,
                                                       T* y, uint8_t* argmax, int64_t y_column,
                                                       int ow, int p, int lanes, bool relu) {
  for (int ox = 0; ox < ow; ++ox)
    for (int l = 0; l < lanes; ++l) {
      const T* window = x + int64_t(ox) * p * column + l;
      float best = -INFINITY;
      uint8_t where = 0;
      for (int ky = 0; ky < p; ++ky)
        for (int kx = 0; kx < p; ++kx) {
          const float value = load(window, ky * row + kx * column);
          if (value > best) best = value, where = uint8_t(ky * p + kx);  // first max wins ties
        }
      const int64_t at = int64_t(ox) * y_column + l;
      store(y, at, relu && !(best > 0.0f) ? 0.0f : best);
      argmax[at] = argmax_byte(where, best);  // best is exact in T: the stored value's flag
    }
}

template <typename T>
inline __attribute__((always_inline)) void zero_columns(T* d, int64_t column, int from, int to,
                                                        int lanes) {
  for (int x = from; x < to; ++x)
    for (int l = 0; l < lanes; ++l) store(d + int64_t(x) * column, l, 0.0f);
}

// The p conv-output rows under one pooled row of one channel block. A
// flagged argmax byte (not positive) equals no window position k.
template <typename T>
inline __attribute__((always_inline)) void backward_row(const T* d_pooled, const uint8_t* argmax,
                                                        int64_t y_column, T* d, int64_t row,
                                                        int64_t column, int w, int ow, int p,
                                                        int lanes) {
  for (int ky = 0; ky < p; ++ky) {
    T* line = d + ky * row;
    for (int ox = 0; ox < ow; ++ox)
      for (int kx = 0; kx < p; ++kx) {
        const uint8_t k = uint8_t(ky * p + kx);
        const int64_t at = int64_t(ox) * y_column;
        T* out = line + (int64_t(ox) * p + kx) * column;
#pragma omp simd
        for (int l = 0; l < lanes; ++l) {
          store(out, l, argmax[at + l] == k ? load(d_pooled + at, l) : 0.0f);
        }
      }
    zero_columns(line, column, ow * p, w, lanes);
  }
}

#if HISTOCNN_HAS_AVX512_CODE
// ---- AVX-512: 16 lanes per register, explicit: on one core of the
// development VM the portable loops above took 1-2 ns per input element, these
// 0.1-0.25 ns (a 16 x 198 x 32 map in cache, 2x2 windows).
using avx512::load16;
using avx512::store16;
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

template <typename T>
HISTOCNN_AVX512 void forward_row_avx512(const T* x, int64_t row, int64_t column, T* y,
                                        uint8_t* argmax, int64_t y_column, int ow, int p, int lanes,
                                        bool relu) {
  for (int ox = 0; ox < ow; ++ox) {
    const T* window = x + int64_t(ox) * p * column;
    const int64_t at = int64_t(ox) * y_column;
    for (int l = 0; l < lanes; l += kChunk) {
      __m512 best = _mm512_set1_ps(-INFINITY);
      __m512i where = _mm512_setzero_si512();
      for (int ky = 0; ky < p; ++ky)
        for (int kx = 0; kx < p; ++kx) {
          const __m512 v = load16(window + ky * row + kx * column + l);
          const __mmask16 larger = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);  // first max wins
          best = _mm512_mask_mov_ps(best, larger, v);
          where = _mm512_mask_mov_epi32(where, larger, _mm512_set1_epi32(ky * p + kx));
        }
      where = avx512::flag_not_positive(where, best, kArgmaxNotPositive);
      if (relu) best = _mm512_max_ps(best, _mm512_setzero_ps());  // +0 where max <= 0
      store16(y + at + l, best);
      avx512::store_bytes16(argmax + at + l, where);
    }
  }
}

template <typename T>
HISTOCNN_AVX512 void backward_row_avx512(const T* d_pooled, const uint8_t* argmax, int64_t y_column,
                                         T* d, int64_t row, int64_t column, int w, int ow, int p,
                                         int lanes) {
  for (int ky = 0; ky < p; ++ky) {
    T* line = d + ky * row;
    for (int ox = 0; ox < ow; ++ox) {
      const int64_t at = int64_t(ox) * y_column;
      for (int l = 0; l < lanes; l += kChunk) {
        const __m512 g = load16(d_pooled + at + l);
        const __m512i where = avx512::load_bytes16(argmax + at + l);  // flagged: no k
        for (int kx = 0; kx < p; ++kx) {
          const __mmask16 here = _mm512_cmpeq_epi32_mask(where, _mm512_set1_epi32(ky * p + kx));
          store16(line + (int64_t(ox) * p + kx) * column + l, _mm512_maskz_mov_ps(here, g));
        }
      }
    }
    zero_columns(line, column, ow * p, w, lanes);
  }
}

#pragma GCC diagnostic pop

bool use_avx512(int lanes) {
  return avx512::available() && lanes % kChunk == 0 && cap >= KernelIsa::avx512;
}
#else
bool use_avx512(int) {
  return false;
}
template <typename T>
void forward_row_avx512(const T*, int64_t, int64_t, T*, uint8_t*, int64_t, int, int, int, bool) {}
template <typename T>
void backward_row_avx512(const T*, const uint8_t*, int64_t, T*, int64_t, int64_t, int, int, int,
                         int) {}
#endif

#if HISTOCNN_HAS_AVX2_CODE
// ---- AVX2: the AVX-512 rows' arithmetic on 8 lanes, masks as vectors. On
// an AVX2 CPU (AMD EPYC, 2 threads) the portable rows took conv1's pool
// (200 px, batch 50) ~80 ms forward and ~60 ms backward a step
// (docs/results/cpu-avx2.md).
using avx2::load8;
using avx2::store8;

template <typename T>
HISTOCNN_AVX2 void forward_row_avx2(const T* x, int64_t row, int64_t column, T* y, uint8_t* argmax,
                                    int64_t y_column, int ow, int p, int lanes, bool relu) {
  for (int ox = 0; ox < ow; ++ox) {
    const T* window = x + int64_t(ox) * p * column;
    const int64_t at = int64_t(ox) * y_column;
    for (int l = 0; l < lanes; l += kChunk2) {
      __m256 best = _mm256_set1_ps(-INFINITY);
      __m256i where = _mm256_setzero_si256();
      for (int ky = 0; ky < p; ++ky)
        for (int kx = 0; kx < p; ++kx) {
          const __m256 v = load8(window + ky * row + kx * column + l);
          const __m256 larger = _mm256_cmp_ps(v, best, _CMP_GT_OQ);  // first max wins
          best = _mm256_blendv_ps(best, v, larger);
          where = _mm256_blendv_epi8(where, _mm256_set1_epi32(ky * p + kx),
                                     _mm256_castps_si256(larger));
        }
      where = avx2::flag_not_positive(where, best, kArgmaxNotPositive);
      if (relu) best = _mm256_max_ps(best, _mm256_setzero_ps());  // +0 where max <= 0
      store8(y + at + l, best);
      avx2::store_bytes8(argmax + at + l, where);
    }
  }
}

template <typename T>
HISTOCNN_AVX2 void backward_row_avx2(const T* d_pooled, const uint8_t* argmax, int64_t y_column,
                                     T* d, int64_t row, int64_t column, int w, int ow, int p,
                                     int lanes) {
  for (int ky = 0; ky < p; ++ky) {
    T* line = d + ky * row;
    for (int ox = 0; ox < ow; ++ox) {
      const int64_t at = int64_t(ox) * y_column;
      for (int l = 0; l < lanes; l += kChunk2) {
        const __m256 g = load8(d_pooled + at + l);
        const __m256i where = avx2::load_bytes8(argmax + at + l);  // flagged: no k
        for (int kx = 0; kx < p; ++kx) {
          const __m256i here = _mm256_cmpeq_epi32(where, _mm256_set1_epi32(ky * p + kx));
          store8(line + (int64_t(ox) * p + kx) * column + l,
                 _mm256_and_ps(_mm256_castsi256_ps(here), g));
        }
      }
    }
    zero_columns(line, column, ow * p, w, lanes);
  }
}

bool use_avx2(int lanes) {
  return avx2::available() && lanes % kChunk2 == 0 && cap >= KernelIsa::avx2;
}
#else
bool use_avx2(int) {
  return false;
}
template <typename T>
void forward_row_avx2(const T*, int64_t, int64_t, T*, uint8_t*, int64_t, int, int, int, bool) {}
template <typename T>
void backward_row_avx2(const T*, const uint8_t*, int64_t, T*, int64_t, int64_t, int, int, int,
                       int) {}
#endif

template <typename T>
void forward_row_of(const T* x, int64_t row, int64_t column, T* y, uint8_t* argmax,
                    int64_t y_column, int ow, int p, int lanes, bool relu) {
  if (use_avx512(lanes))
    return forward_row_avx512(x, row, column, y, argmax, y_column, ow, p, lanes, relu);
  if (use_avx2(lanes))
    return forward_row_avx2(x, row, column, y, argmax, y_column, ow, p, lanes, relu);
  forward_row(x, row, column, y, argmax, y_column, ow, p, lanes, relu);
}

template <typename T>
void backward_row_of(const T* d_pooled, const uint8_t* argmax, int64_t y_column, T* d, int64_t row,
                     int64_t column, int w, int ow, int p, int lanes) {
  if (use_avx512(lanes))
    return backward_row_avx512(d_pooled, argmax, y_column, d, row, column, w, ow, p, lanes);
  if (use_avx2(lanes))
    return backward_row_avx2(d_pooled, argmax, y_column, d, row, column, w, ow, p, lanes);
  backward_row(d_pooled, argmax, y_column, d, row, column, w, ow, p, lanes);
}

template <typename T>
void zero_rows_of(T* d, int64_t row, int64_t column, int rows, int w, int lanes) {
  for (int y = 0; y < rows; ++y) zero_columns(d + y * row, column, 0, w, lanes);
}

// Task t of the (image, block, pooled row) grid: its offsets in both layouts.
struct Task {
  int64_t in_at, out_at;
  int oy;
};
inline Task task(int64_t t, const LaneLayout& in, const LaneLayout& out, int p) {
  const int oy = int(t % out.h);
  const int64_t image_block = t / out.h;
  const int64_t b = image_block % out.blocks, n = image_block / out.blocks;
  return {n * in.image + b * in.block + int64_t(oy) * p * in.row,
          n * out.image + b * out.block + int64_t(oy) * out.row, oy};
}

template <typename T>
void forward(const T* x, const LaneLayout& in, T* y, uint8_t* argmax, const LaneLayout& out, int p,
             bool relu) {
  const int64_t tasks = int64_t(out.n) * out.blocks * out.h;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const Task k = task(t, in, out, p);
    forward_row_of(x + k.in_at, in.row, in.column, y + k.out_at, argmax + k.out_at, out.column,
                   out.w, p, out.lanes, relu);
  }
}

template <typename T>
void backward(const T* d_pooled, const uint8_t* argmax, const LaneLayout& out, T* d_act,
              const LaneLayout& in, int p) {
  const int64_t tasks = int64_t(out.n) * out.blocks * out.h;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const Task k = task(t, in, out, p);
    backward_row_of(d_pooled + k.out_at, argmax + k.out_at, out.column, d_act + k.in_at, in.row,
                    in.column, in.w, out.w, p, out.lanes);
    if (k.oy == out.h - 1)  // the rows past the last whole window
      zero_rows_of(d_act + k.in_at + int64_t(p) * in.row, in.row, in.column, in.h - out.h * p, in.w,
                   in.lanes);
  }
}

}  // namespace pool_rows

void cap_pool_kernels(const std::string& isa) {
  pool_rows::cap = parse_kernel_isa(isa, "cap_pool_kernels");
}
std::string pool_kernels_isa(int lanes) {
  return kernel_isa_name(pool_rows::use_avx512(lanes) ? KernelIsa::avx512
                         : pool_rows::use_avx2(lanes) ? KernelIsa::avx2
                                                      : KernelIsa::portable);
}

void max_pool_forward(const float* x, const LaneLayout& in, float* y, uint8_t* argmax,
                      const LaneLayout& out, int p, bool relu) {
  pool_rows::forward(x, in, y, argmax, out, p, relu);
}
void max_pool_forward(const Bf16* x, const LaneLayout& in, Bf16* y, uint8_t* argmax,
                      const LaneLayout& out, int p, bool relu) {
  pool_rows::forward(x, in, y, argmax, out, p, relu);
}
void max_pool_relu_backward(const float* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                            float* d_act, const LaneLayout& in, int p) {
  pool_rows::backward(d_pooled, argmax, out, d_act, in, p);
}
void max_pool_relu_backward(const Bf16* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                            Bf16* d_act, const LaneLayout& in, int p) {
  pool_rows::backward(d_pooled, argmax, out, d_act, in, p);
}

void max_pool_forward(dnnl::memory::data_type type, const void* x, const LaneLayout& in, void* y,
                      uint8_t* argmax, const LaneLayout& out, int p, bool relu) {
  if (type == dnnl::memory::data_type::bf16)
    return max_pool_forward(static_cast<const Bf16*>(x), in, static_cast<Bf16*>(y), argmax, out, p,
                            relu);
  max_pool_forward(static_cast<const float*>(x), in, static_cast<float*>(y), argmax, out, p, relu);
}
void max_pool_relu_backward(dnnl::memory::data_type type, const void* d_pooled,
                            const uint8_t* argmax, const LaneLayout& out, void* d_act,
                            const LaneLayout& in, int p) {
  if (type == dnnl::memory::data_type::bf16)
    return max_pool_relu_backward(static_cast<const Bf16*>(d_pooled), argmax, out,
                                  static_cast<Bf16*>(d_act), in, p);
  max_pool_relu_backward(static_cast<const float*>(d_pooled), argmax, out,
                         static_cast<float*>(d_act), in, p);
}

}  // namespace histocnn::cpu
