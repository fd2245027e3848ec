// See adam_kernel.h. Each OpenMP thread takes one contiguous run of whole
// cache lines and streams its own part of the four arrays.
#include "backends/cpu/adam_kernel.h"

#include <omp.h>

#include <algorithm>

#include "backends/cpu/avx2.h"
#include "backends/cpu/avx512.h"
#include "backends/cpu/kernel_isa.h"

namespace histocnn::cpu {
namespace {

KernelIsa adam_cap = KernelIsa::avx512;  // cap_adam (tests, bench_epoch --portable-adam)

// Below this many parameters per thread the fork/join costs more than the
// work saves (a 45k-parameter update takes ~25 us on one AVX-512 core).
constexpr int64_t kParametersPerThread = 32768;

void adam_portable(const elementwise::AdamStep& a, int64_t n, float* w, const float* g, float* m,
                   float* v) {
  for (int64_t i = 0; i < n; ++i) elementwise::adam(a, g[i], w + i, m + i, v + i);
}

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // GCC bug 105593, as in avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// elementwise::adam on 16 lanes. Each product and sum is its own intrinsic and
// the file is compiled with -ffp-contract=off (CMakeLists.txt): a fused
// multiply-add would round once where the portable loop rounds twice.
HISTOCNN_AVX512 void adam_avx512(const elementwise::AdamStep& a, int64_t n, float* w,
                                 const float* g, float* m, float* v) {
  const __m512 beta1 = _mm512_set1_ps(a.beta1), beta2 = _mm512_set1_ps(a.beta2);
  const __m512 one_minus_beta1 = _mm512_set1_ps(1.0f - a.beta1);
  const __m512 one_minus_beta2 = _mm512_set1_ps(1.0f - a.beta2);
  const __m512 epsilon = _mm512_set1_ps(a.epsilon), decay = _mm512_set1_ps(a.decay);
  const __m512 step_size = _mm512_set1_ps(a.step_size), v_scale = _mm512_set1_ps(a.v_scale);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gi = _mm512_loadu_ps(g + i);
    const __m512 mi = _mm512_add_ps(_mm512_mul_ps(beta1, _mm512_loadu_ps(m + i)),
                                    _mm512_mul_ps(one_minus_beta1, gi));
    const __m512 g2 = _mm512_mul_ps(_mm512_mul_ps(one_minus_beta2, gi), gi);
    const __m512 vi = _mm512_add_ps(_mm512_mul_ps(beta2, _mm512_loadu_ps(v + i)), g2);
    _mm512_storeu_ps(m + i, mi);
    _mm512_storeu_ps(v + i, vi);
    const __m512 denominator = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), v_scale), epsilon);
    const __m512 step = _mm512_div_ps(_mm512_mul_ps(step_size, mi), denominator);
    _mm512_storeu_ps(w + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(w + i), decay), step));
  }
  adam_portable(a, n - i, w + i, g + i, m + i, v + i);
}
#pragma GCC diagnostic pop
#endif

#if HISTOCNN_HAS_AVX2_CODE
// adam_avx512 on 8 lanes, for CPUs without AVX-512: where the portable loop
// ran at ~4 ms of a ~32 ms step (200 px, batch 10, 2 threads of an AVX2
// AMD EPYC; docs/results/cpu-avx2.md). The same expression, so the same bits.
HISTOCNN_AVX2 void adam_avx2(const elementwise::AdamStep& a, int64_t n, float* w, const float* g,
                             float* m, float* v) {
  const __m256 beta1 = _mm256_set1_ps(a.beta1), beta2 = _mm256_set1_ps(a.beta2);
  const __m256 one_minus_beta1 = _mm256_set1_ps(1.0f - a.beta1);
  const __m256 one_minus_beta2 = _mm256_set1_ps(1.0f - a.beta2);
  const __m256 epsilon = _mm256_set1_ps(a.epsilon), decay = _mm256_set1_ps(a.decay);
  const __m256 step_size = _mm256_set1_ps(a.step_size), v_scale = _mm256_set1_ps(a.v_scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    const __m256 mi = _mm256_add_ps(_mm256_mul_ps(beta1, _mm256_loadu_ps(m + i)),
                                    _mm256_mul_ps(one_minus_beta1, gi));
    const __m256 g2 = _mm256_mul_ps(_mm256_mul_ps(one_minus_beta2, gi), gi);
    const __m256 vi = _mm256_add_ps(_mm256_mul_ps(beta2, _mm256_loadu_ps(v + i)), g2);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    const __m256 denominator = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), v_scale), epsilon);
    const __m256 step = _mm256_div_ps(_mm256_mul_ps(step_size, mi), denominator);
    _mm256_storeu_ps(w + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), decay), step));
  }
  adam_portable(a, n - i, w + i, g + i, m + i, v + i);
}
#endif

void adam_range(KernelIsa isa, const elementwise::AdamStep& a, int64_t n, float* w, const float* g,
                float* m, float* v) {
#if HISTOCNN_HAS_AVX512_CODE
  if (isa == KernelIsa::avx512) return adam_avx512(a, n, w, g, m, v);
#endif
#if HISTOCNN_HAS_AVX2_CODE
  if (isa == KernelIsa::avx2) return adam_avx2(a, n, w, g, m, v);
#endif
  adam_portable(a, n, w, g, m, v);
}

}  // namespace

void adam_update_simd(const AdamConfig& config, int64_t t, int64_t n, float* w, const float* g,
                      float* m, float* v) {
  const elementwise::AdamStep a = adam_constants(config, t);
  const KernelIsa isa = capped_kernel_isa(adam_cap);
  const int64_t threads =
      std::clamp<int64_t>(n / kParametersPerThread, 1, int64_t(omp_get_max_threads()));
  if (threads == 1) return adam_range(isa, a, n, w, g, m, v);
  constexpr int64_t kLine = 16;  // floats per 64-byte cache line
  const int64_t lines = (n + kLine - 1) / kLine;
  const int64_t per_thread = (lines + threads - 1) / threads * kLine;
#pragma omp parallel for schedule(static) num_threads(int(threads))
  for (int64_t k = 0; k < threads; ++k) {
    const int64_t begin = std::min(n, k * per_thread), end = std::min(n, begin + per_thread);
    adam_range(isa, a, end - begin, w + begin, g + begin, m + begin, v + begin);
  }
}

std::string adam_isa() {
  return kernel_isa_name(capped_kernel_isa(adam_cap));
}
void cap_adam(const std::string& isa) {
  adam_cap = parse_kernel_isa(isa, "cap_adam");
}

}  // namespace histocnn::cpu
