// The CPU step's Adam update over the flat parameter vector: the same
// arithmetic as histocnn::adam_update (nn/adam.h, elementwise::adam), bit for
// bit, but 16 lanes at a time where the CPU has AVX-512. Why: the project
// builds for any x86-64, and there sqrtf and the division of the update stay
// scalar (math errno forbids vectorising sqrtf); the update ran at ~10 cycles
// per parameter — 7.1 ms of a 66 ms step at 200 px, batch 10, one thread, and
// 17% of the step at 32 px (docs/results/cpu-adam.md).
//
// Contract: t >= 1; weights, grads, m and v hold n floats each and do not
// overlap. The result does not depend on the CPU, the thread count or
// set_portable_adam: every lane computes elementwise::adam's expression in
// its order, with no fused multiply-add (tests/test_cpu_adam.cpp).
#pragma once

#include <cstdint>

#include "nn/adam.h"

namespace histocnn::cpu {

void adam_update_simd(const AdamConfig& config, int64_t t, int64_t n, float* weights,
                      const float* grads, float* m, float* v);

// Tests: true runs the portable loop on every CPU.
void set_portable_adam(bool portable);

}  // namespace histocnn::cpu
