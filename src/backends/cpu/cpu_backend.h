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

// Whether a convolution is worth asking oneDNN's Winograd F(4x4, 3x3) for
// (StepOptions::cpu_winograd; oneDNN may still answer "unimplemented").
// Measured on two cores (docs/results/cpu-winograd.md): Winograd pads the
// channels to 16 — 3 input channels ran 2.6-7x slower than direct — and its
// transforms cost per 4x4 tile, so small maps lose: 32 -> 32 channels with a
// 13x13 output ran 1.2-1.4x slower, 29x29 1.1-1.6x faster; with 128 channels
// a 14x14 output was already 1.5x faster.
// requires: s is a valid ConvShape.
bool winograd_pays(const ConvShape& s);

// Where our Winograd F(4x4, 3x3) conv + ReLU + pool kernel
// (winograd_pool_kernels.h) runs the forward of a later block instead of
// oneDNN's convolution (where it applies: fp32, AVX-512 or AVX2, a 2x2
// pool, no batch norm). On AVX2 oneDNN has no Winograd at all, and ours
// replaces its direct convolution (docs/results/cpu-avx2.md). It pays on smaller maps than oneDNN's Winograd, since it
// writes no conv output and pools from registers: on two cores
// (docs/results/cpu-winograd-small.md) a 13x13 output of 32 -> 32 channels
// (conv2 at 32 px) took 0.55-0.70x oneDNN's direct forward, and 12x12 of
// 32 -> 64 (conv3 at 64 px) 0.55-0.85x; a 4x4 output (one tile a row, the
// tile group mostly empty) took 1.6-6x. Sides 5-11 are not measured.
// requires: s is a valid ConvShape.
bool own_winograd_pays(const ConvShape& s);

}  // namespace histocnn
