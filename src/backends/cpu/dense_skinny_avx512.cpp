// The skinny dense kernels on AVX-512 (dense_skinny.h): 16 columns a
// register. fc1 at the paper's batch 10 is bound by memory: they read w
// once in each direction and pack nothing (docs/results/cpu-dense.md).
#include "backends/cpu/avx512.h"
#include "backends/cpu/dense_skinny.h"

namespace histocnn::cpu::dense_skinny {

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
namespace {

struct Avx512 {
  static constexpr int kLanes = 16;
  static constexpr int64_t kBlockVectors = 16;
  // Forward reads each weight row's block once per block: long blocks make
  // long streams from DRAM (the step's case); x's block (rows x 4 KB) stays
  // near L1.
  static constexpr int64_t kForwardBlock = 64;
  // The outputs go in groups of kOutputGroup: x's and dx's rows stay in
  // registers for a group, and a group reads that many weight rows'
  // contiguous blocks (one stream each; all 64 at once outran the
  // prefetchers).
  static constexpr int kOutputGroup = 8;

  // dw summed over the rows, dx over the outputs, in order.
  template <int R>
  HISTOCNN_AVX512 static void backward_columns(int in, int out, const float* x, const float* dy,
                                               const float* w, float* dw, float* dx, int64_t v0,
                                               int64_t v1) {
    __m512 xs[R], acc[R];
    for (int first = 0; first < out; first += kOutputGroup) {
      const int last = std::min(out, first + kOutputGroup);
      for (int64_t v = v0; v < v1; ++v) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          xs[r] = _mm512_loadu_ps(x + int64_t(r) * in + 16 * v);
          acc[r] =
              first == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(dx + int64_t(r) * in + 16 * v);
        }
        for (int o = first; o < last; ++o) {
          const __m512 wv = _mm512_loadu_ps(w + int64_t(o) * in + 16 * v);
          __m512 d = _mm512_setzero_ps();
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) {
            const __m512 g = _mm512_set1_ps(dy[r * out + o]);
            d = _mm512_fmadd_ps(g, xs[r], d);
            acc[r] = _mm512_fmadd_ps(g, wv, acc[r]);
          }
          _mm512_storeu_ps(dw + int64_t(o) * in + 16 * v, d);
        }
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) _mm512_storeu_ps(dx + int64_t(r) * in + 16 * v, acc[r]);
      }
    }
  }

  template <int R>
  HISTOCNN_AVX512 static void forward_columns(int in, int out, const float* x, const float* w,
                                              float* partial, int64_t v0, int64_t v1) {
    for (int o = 0; o < out; ++o) {
      __m512 acc[R];
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r] = _mm512_loadu_ps(partial + (int64_t(r) * out + o) * 16);
      for (int64_t v = v0; v < v1; ++v) {
        const __m512 wv = _mm512_loadu_ps(w + int64_t(o) * in + 16 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
          acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + int64_t(r) * in + 16 * v), wv, acc[r]);
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) _mm512_storeu_ps(partial + (int64_t(r) * out + o) * 16, acc[r]);
    }
  }

  HISTOCNN_AVX512 static float sum_partials(const float* partials, int threads, int outputs,
                                            int i) {
    __m512 acc = _mm512_loadu_ps(partials + int64_t(i) * 16);
    for (int t = 1; t < threads; ++t)
      acc = _mm512_add_ps(acc, _mm512_loadu_ps(partials + (int64_t(t) * outputs + i) * 16));
    return _mm512_reduce_add_ps(acc);
  }
};

}  // namespace
#pragma GCC diagnostic pop

bool forward_avx512(int rows, int in, int out, const float* x, const float* w, float* y) {
  return dispatch_rows(rows, [&]<int R>() { forward<Avx512, R>(in, out, x, w, y); });
}
bool backward_avx512(int rows, int in, int out, const float* x, const float* dy, const float* w,
                     float* dw, float* dx) {
  return dispatch_rows(rows, [&]<int R>() { backward<Avx512, R>(in, out, x, dy, w, dw, dx); });
}
#else
bool forward_avx512(int, int, int, const float*, const float*, float*) {
  return false;
}
bool backward_avx512(int, int, int, const float*, const float*, const float*, float*, float*) {
  return false;
}
#endif

}  // namespace histocnn::cpu::dense_skinny
