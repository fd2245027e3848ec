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
// The default micro-batching budget for a team of `threads`: 4 MiB up to two
// threads (measured best on two cores), 2 MiB per thread beyond. A fixed
// budget would shrink the slices' share per thread as the team grows, and
// oneDNN splits a convolution's weight gradient over at most images x
// output-channel blocks x input-channel blocks threads: slices of 2 images of
// 32 channels keep 8 of 16 threads busy (docs/results/cpu-fused-conv1.md).
size_t cpu_slice_bytes_for(int threads);

}  // namespace histocnn
