// The CPU step's Adam update over the flat parameter vector: the same
// arithmetic as histocnn::adam_update (nn/adam.h, elementwise::adam), bit for
// bit, but 16 lanes at a time where the CPU has AVX-512 and 8 where it has
// AVX2 (kernel_isa.h: as the other kernels, not above oneDNN's cap). Why: the project
// builds for any x86-64, and there sqrtf and the division of the update stay
// scalar (math errno forbids vectorising sqrtf); the update ran at ~10 cycles
// per parameter — 7.1 ms of a 66 ms step at 200 px, batch 10, one thread, and
// 17% of the step at 32 px (docs/results/cpu-adam.md).
//
// Contract: t >= 1; weights, grads, m and v hold n floats each and do not
// overlap. The result does not depend on the CPU, the thread count or
// cap_adam: every lane computes elementwise::adam's expression in
// its order, with no fused multiply-add (tests/test_cpu_adam.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "nn/adam.h"

namespace histocnn::cpu {

void adam_update_simd(const AdamConfig& config, int64_t t, int64_t n, float* weights,
                      const float* grads, float* m, float* v);

// The version that runs here: "avx512", "avx2" or "portable".
std::string adam_isa();
// Tests and A/B runs: at most this version ("avx512", the default, leaves
// the machine's best; "portable" runs the scalar loop on every CPU).
void cap_adam(const std::string& isa);

}  // namespace histocnn::cpu
