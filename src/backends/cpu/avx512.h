// AVX-512 helpers shared by the CPU step's own kernels (pool_kernels.cpp,
// conv_pool_kernels.cpp): 16 fp32 lanes loaded from and stored to fp32 or bf16
// tensors. The project builds for any x86-64 (unless HISTOCNN_NATIVE is on),
// so every function carries its target and the kernels choose them at run
// time (`avx512_available`). Include only from x86-64 code
// (HISTOCNN_HAS_AVX512_CODE).
#pragma once

#if defined(__x86_64__)
#define HISTOCNN_HAS_AVX512_CODE 1
#include <immintrin.h>

#include "core/bf16.h"

#define HISTOCNN_AVX512 __attribute__((target("avx512f")))
// For FMA loops that broadcast inputs: GCC's predictive commoning (-O3)
// carries input values from one tap or column to the next in xmm registers
// and broadcasts them on port 5, one of the two ports the 512-bit FMAs need
// (the fused conv1 loops ran at half speed). Broadcasting straight from
// memory (load ports) keeps both FMA ports busy.
#define HISTOCNN_FMA_KERNEL \
  __attribute__((target("avx512f"), optimize("no-predictive-commoning"), noinline))

namespace histocnn::cpu::avx512 {

// GCC 12 warns inside its own intrinsics' _mm512_undefined_* (GCC bug
// 105593), wherever they are inlined: files using these push the same.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// `where` (an argmax per lane) with `flag` or'ed into the lanes whose
// window maximum `best` is not > 0 (NaN included): the not-positive flag of
// pool_kernels.h, set the same way by every pool kernel of ours.
HISTOCNN_AVX512 inline __m512i flag_not_positive(__m512i where, __m512 best, int flag) {
  const __mmask16 not_positive = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(), _CMP_NGT_UQ);
  return _mm512_mask_or_epi32(where, not_positive, where, _mm512_set1_epi32(flag));
}
HISTOCNN_AVX512 inline __m512 load16(const float* p) {
  return _mm512_loadu_ps(p);
}
HISTOCNN_AVX512 inline __m512 load16(const Bf16* p) {  // bf16 bits are a float's upper half
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
}
HISTOCNN_AVX512 inline void store16(float* p, __m512 v) {
  _mm512_storeu_ps(p, v);
}
// Truncates: exact for values read from bf16 (maxima, gradients, zeros).
HISTOCNN_AVX512 inline void store16(Bf16* p, __m512 v) {
  const __m512i bits = _mm512_srli_epi32(_mm512_castps_si512(v), 16);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(bits));
}
// Rounds computed values as to_bf16 does (nearest, ties to even) for finite
// ones; NaN is not expected here (the step's values are finite or it failed).
HISTOCNN_AVX512 inline void store16_rounded(float* p, __m512 v) {
  _mm512_storeu_ps(p, v);
}
// v rounded to bf16 as to_bf16 does, kept as floats (the low 16 bits zero):
// what a store to bf16 keeps, for kernels that flag by the stored value.
HISTOCNN_AVX512 inline __m512 round16_to_bf16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
  return _mm512_castsi512_ps(_mm512_and_si512(rounded, _mm512_set1_epi32(int(0xffff0000u))));
}
HISTOCNN_AVX512 inline void store16_rounded(Bf16* p, __m512 v) {
  store16(p, round16_to_bf16(v));
}
// One argmax byte per lane.
HISTOCNN_AVX512 inline __m512i load_bytes16(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
HISTOCNN_AVX512 inline void store_bytes16(uint8_t* p, __m512i v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(v));
}

#pragma GCC diagnostic pop

// Whether this CPU runs AVX-512F (checked once).
inline bool available() {
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  return avx512;
}

}  // namespace histocnn::cpu::avx512
#else
#define HISTOCNN_HAS_AVX512_CODE 0  // other architectures run portable code only
#endif
