// CPU backend: oneDNN primitives for convolution, pooling, ReLU and inner
// product, forward and backward; OpenMP threads bounded by --threads.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace histocnn {

std::unique_ptr<Backend> make_cpu_backend();
// Whether --precision bf16 can train here: oneDNN runs native bf16 kernels
// (AVX512-BF16 or AMX; ONEDNN_MAX_CPU_ISA can lower what it uses).
bool cpu_supports_bf16();

}  // namespace histocnn
