// The versions of the CPU step's own kernels, best first: AVX-512 (oneDNN's
// 16-channel blocks), AVX2 (its 8-channel blocks on CPUs without AVX-512)
// and portable loops (their reference). Each kernel runs the best version
// the CPU, oneDNN's ISA and the layouts allow, at most its cap: tests lower
// the cap to run every version on one machine.
#pragma once

#include <algorithm>
#include <string>

#include "core/error.h"

namespace histocnn::cpu {

enum class KernelIsa { portable, avx2, avx512 };

// "avx512", "avx2" or "portable"; another name is an Error naming `who`.
inline KernelIsa parse_kernel_isa(const std::string& name, const std::string& who) {
  if (name == "avx512") return KernelIsa::avx512;
  if (name == "avx2") return KernelIsa::avx2;
  require(name == "portable", who + ": unknown ISA '" + name + "' (avx512, avx2, portable)");
  return KernelIsa::portable;
}

inline std::string kernel_isa_name(KernelIsa isa) {
  return isa == KernelIsa::avx512 ? "avx512" : isa == KernelIsa::avx2 ? "avx2" : "portable";
}

// The best version this CPU runs whose oneDNN counterpart oneDNN runs too:
// AVX-512 where it has AVX-512F and oneDNN is not capped below avx512_core,
// AVX2 (with FMA) where oneDNN is not capped below avx2. A run capped by
// ONEDNN_MAX_CPU_ISA (as the golden-run tests are) thus takes the same
// kernels, and gives the same bits, on every x86 CPU above the cap.
KernelIsa machine_kernel_isa();

// What a kernel family capped at `cap` (its cap_... function, for tests) runs:
// the machine's best version, at most the cap.
inline KernelIsa capped_kernel_isa(KernelIsa cap) {
  return std::min(machine_kernel_isa(), cap);
}

// Channels per register of a version, and per block of oneDNN's layouts
// there: 16 (nChw16c) for AVX-512, otherwise 8 (nChw8c, as oneDNN's AVX2
// and SSE4.1 code).
constexpr int kernel_isa_lanes(KernelIsa isa) {
  return isa == KernelIsa::avx512 ? 16 : 8;
}

}  // namespace histocnn::cpu
