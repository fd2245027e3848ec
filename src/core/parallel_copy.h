// One large copy split over a few OpenMP threads. A single thread's memcpy
// moves about 10 GB/s; a server's memory several times that. The CUDA step
// copies every batch into its pinned staging buffer on the training thread
// (888 MB an epoch at 200 px), where one thread's copy approaches the GPU's
// own step time at batch 150 in bf16 (docs/results/gpu-h200.md).
#pragma once

#include <cstddef>

namespace histocnn {

// dst and src must not overlap. Splits into chunks of at least `min_chunk`
// bytes, at most `threads` of them at once (threads < 2 or a small copy: one
// memcpy on the caller's thread). The bytes are those of one memcpy.
void parallel_copy(void* dst, const void* src, size_t bytes, int threads,
                   size_t min_chunk = size_t(4) << 20);

}  // namespace histocnn
