// AVX2 helpers for the CPU step's own kernels where a CPU has no AVX-512
// (AMD before Zen 4, Intel's client cores since Alder Lake): 8 fp32 lanes
// loaded from and stored to fp32 or bf16 tensors, as avx512.h's 16. oneDNN
// lays activations out in 8-channel blocks (nChw8c) on these CPUs, one
// register a block. Every function carries its target, so the project still
// builds for any x86-64 and the kernels choose at run time (`available`).
// Include only from x86-64 code (HISTOCNN_HAS_AVX2_CODE).
#pragma once

#if defined(__x86_64__)
#define HISTOCNN_HAS_AVX2_CODE 1
#include <immintrin.h>

#include <cstdint>

#include "core/bf16.h"

#define HISTOCNN_AVX2 __attribute__((target("avx2,fma")))

namespace histocnn::cpu::avx2 {

HISTOCNN_AVX2 inline __m256 load8(const float* p) {
  return _mm256_loadu_ps(p);
}
HISTOCNN_AVX2 inline __m256 load8(const Bf16* p) {  // bf16 bits are a float's upper half
  const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}
HISTOCNN_AVX2 inline void store8(float* p, __m256 v) {
  _mm256_storeu_ps(p, v);
}
// Truncates: exact for values read from bf16 (maxima, gradients, zeros).
HISTOCNN_AVX2 inline void store8(Bf16* p, __m256 v) {
  const __m256i bits = _mm256_srli_epi32(_mm256_castps_si256(v), 16);  // 0..0xffff: packs exactly
  const __m128i packed =
      _mm_packus_epi32(_mm256_castsi256_si128(bits), _mm256_extracti128_si256(bits, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}

// Rounds computed values as to_bf16 does (nearest, ties to even) for finite
// ones, as avx512.h's store16_rounded.
HISTOCNN_AVX2 inline void store8_rounded(float* p, __m256 v) {
  _mm256_storeu_ps(p, v);
}
// v rounded to bf16 as to_bf16 does, kept as floats (the low 16 bits zero),
// as avx512.h's round16_to_bf16.
HISTOCNN_AVX2 inline __m256 round8_to_bf16(__m256 v) {
  const __m256i u = _mm256_castps_si256(v);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd));
  return _mm256_castsi256_ps(_mm256_and_si256(rounded, _mm256_set1_epi32(int(0xffff0000u))));
}
HISTOCNN_AVX2 inline void store8_rounded(Bf16* p, __m256 v) {
  store8(p, round8_to_bf16(v));
}

// One argmax byte per lane (values 0..255).
HISTOCNN_AVX2 inline __m256i load_bytes8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
HISTOCNN_AVX2 inline void store_bytes8(uint8_t* p, __m256i v) {
  const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
}

// `where` (an argmax per lane) with `flag` or'ed into the lanes whose
// window maximum `best` is not > 0 (NaN included), as avx512.h's.
HISTOCNN_AVX2 inline __m256i flag_not_positive(__m256i where, __m256 best, int flag) {
  const __m256 not_positive = _mm256_cmp_ps(best, _mm256_setzero_ps(), _CMP_NGT_UQ);
  return _mm256_or_si256(
      where, _mm256_and_si256(_mm256_castps_si256(not_positive), _mm256_set1_epi32(flag)));
}

// Whether this CPU runs AVX2 and FMA (checked once).
inline bool available() {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2;
}

}  // namespace histocnn::cpu::avx2
#else
#define HISTOCNN_HAS_AVX2_CODE 0  // other architectures run portable code only
#endif
