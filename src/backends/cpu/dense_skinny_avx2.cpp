// The skinny dense backward on AVX2 (dense_skinny.h), for CPUs without
// AVX-512: 8 columns a register. The AVX-512 version keeps x's rows and
// dx's sums in registers, 2 x 12 of its 32; here 12 of 16 hold dx's sums
// and x is read from L1 by the FMAs. dw's and dx's elements take their
// terms in the AVX-512 version's order (dw over the rows, dx over the
// outputs), so they are the same bits.
//
// No forward: on 2 cores of an AVX2 AMD EPYC, fc1 at batch 10 took 0.57 ms
// on an 8-lane port of the AVX-512 forward against sgemm's 0.49
// (bench_dense, 9 interleaved repetitions, 2026-12-06), sgemm already near
// the floor of reading w from DRAM (8.7 MB at ~24 GB/s: 0.36 ms).
#include "backends/cpu/avx2.h"
#include "backends/cpu/dense_skinny.h"

namespace histocnn::cpu::dense_skinny {

#if HISTOCNN_HAS_AVX2_CODE
namespace {

struct Avx2 {
  static constexpr int kLanes = 8;
  static constexpr int64_t kBlockVectors = 32;  // the AVX-512 version's 256 columns
  static constexpr int kOutputGroup = 8;        // as the AVX-512 version's
  static_assert(kSkinnyRows + 3 <= 16, "dx's sums, w, g and d in the 16 ymm registers");

  template <int R>
  HISTOCNN_AVX2 static void backward_columns(int in, int out, const float* x, const float* dy,
                                             const float* w, float* dw, float* dx, int64_t v0,
                                             int64_t v1) {
    __m256 acc[R];
    for (int first = 0; first < out; first += kOutputGroup) {
      const int last = std::min(out, first + kOutputGroup);
      for (int64_t v = v0; v < v1; ++v) {
        const float* xv = x + 8 * v;
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
          acc[r] = first == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(dx + int64_t(r) * in + 8 * v);
        for (int o = first; o < last; ++o) {
          const __m256 wv = _mm256_loadu_ps(w + int64_t(o) * in + 8 * v);
          __m256 d = _mm256_setzero_ps();
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) {
            const __m256 g = _mm256_set1_ps(dy[r * out + o]);
            d = _mm256_fmadd_ps(g, _mm256_loadu_ps(xv + int64_t(r) * in), d);
            acc[r] = _mm256_fmadd_ps(g, wv, acc[r]);
          }
          _mm256_storeu_ps(dw + int64_t(o) * in + 8 * v, d);
        }
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) _mm256_storeu_ps(dx + int64_t(r) * in + 8 * v, acc[r]);
      }
    }
  }
};

}  // namespace

bool backward_avx2(int rows, int in, int out, const float* x, const float* dy, const float* w,
                   float* dw, float* dx) {
  return dispatch_rows(rows, [&]<int R>() { backward<Avx2, R>(in, out, x, dy, w, dw, dx); });
}
#else
bool backward_avx2(int, int, int, const float*, const float*, const float*, float*, float*) {
  return false;
}
#endif

}  // namespace histocnn::cpu::dense_skinny
