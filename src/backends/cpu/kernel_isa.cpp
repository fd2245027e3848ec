// Which version of the step's own kernels this machine runs (kernel_isa.h).
#include "backends/cpu/kernel_isa.h"

#include <dnnl.hpp>

#include "backends/cpu/avx2.h"
#include "backends/cpu/avx512.h"

namespace histocnn::cpu {

KernelIsa machine_kernel_isa() {
  // oneDNN's ISA values nest: a capped run reports the cap.
  const auto onednn = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  [[maybe_unused]] const auto allows = [onednn](dnnl::cpu_isa isa) {
    return (onednn & static_cast<unsigned>(isa)) == static_cast<unsigned>(isa);
  };
#if HISTOCNN_HAS_AVX512_CODE
  if (avx512::available() && allows(dnnl::cpu_isa::avx512_core)) return KernelIsa::avx512;
#endif
#if HISTOCNN_HAS_AVX2_CODE
  if (avx2::available() && allows(dnnl::cpu_isa::avx2)) return KernelIsa::avx2;
#endif
  return KernelIsa::portable;
}

}  // namespace histocnn::cpu
