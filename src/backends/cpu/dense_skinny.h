// The skinny dense kernels of dense_kernels.h (a batch of at most
// kSkinnyRows rows): how the threads share the work, the same for each
// version, and the versions' column kernels, one file each
// (dense_skinny_avx512.cpp, dense_skinny_avx2.cpp). Internal to
// dense_kernels.cpp and those files.
//
// A version is a struct with, for each row count R:
//   kLanes, kBlockVectors (backward's unit among the threads, in vectors);
//   backward_columns<R>(in, out, x, dy, w, dw, dx, v0, v1): dw's and dx's
//     columns [kLanes v0, kLanes v1), each element summed in one fixed order;
// and where it has a forward (AVX-512: sgemm was as fast on AVX2),
//   kForwardBlock (forward's unit, in vectors);
//   forward_columns<R>(in, out, x, w, partial, v0, v1): a thread's share of
//     y = x w^T over those columns, added to `partial` ([R][out][kLanes]);
//   sum_partials(partials, threads, outputs, i): output i from the threads'
//     partials ([threads][outputs][kLanes]), added in thread order, then
//     the lanes in a fixed order.
// The drivers below call them; they hold no vector code themselves, so they
// need no target attribute.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/cpu/dense_kernels.h"

namespace histocnn::cpu::dense_skinny {

template <class Version, int R>
void backward(int in, int out, const float* x, const float* dy, const float* w, float* dw,
              float* dx) {
  const int64_t vectors = in / Version::kLanes;
  const int64_t blocks = (vectors + Version::kBlockVectors - 1) / Version::kBlockVectors;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b)
    Version::template backward_columns<R>(in, out, x, dy, w, dw, dx, b * Version::kBlockVectors,
                                          std::min(vectors, (b + 1) * Version::kBlockVectors));
}

// Each thread sums a contiguous run of blocks into its own partial; then
// each output adds the threads' partials in order (reproducible for a thread
// count), vectorised and the outputs shared among the threads. Added one
// value at a time on one thread, 16 threads' partials of fc1's 640 outputs
// at batch 10 took 0.071 ms, against 0.012 ms vectorised (a standalone loop,
// one core of the 2-core AMD VM, 2026-12-04); fc1 forward was 0.37 ms of
// the 16-thread step there (cpu-scaling-16core.md).
template <class Version, int R>
void forward(int in, int out, const float* x, const float* w, float* y) {
  constexpr int kLanes = Version::kLanes;
  const int64_t vectors = in / kLanes;
  const int64_t blocks = (vectors + Version::kForwardBlock - 1) / Version::kForwardBlock;
  const int threads = omp_get_max_threads();
  thread_local std::vector<float> partial;  // kept: a steady step allocates nothing
  partial.assign(size_t(threads) * R * out * kLanes, 0.0f);
  float* const partials = partial.data();  // the caller's: thread_local names another per thread
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t first = blocks * t / team, last = blocks * (t + 1) / team;
    float* mine = partials + size_t(t) * R * out * kLanes;
    for (int64_t b = first; b < last; ++b)
      Version::template forward_columns<R>(in, out, x, w, mine, b * Version::kForwardBlock,
                                           std::min(vectors, (b + 1) * Version::kForwardBlock));
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int i = 0; i < R * out; ++i) y[i] = Version::sum_partials(partials, threads, R * out, i);
}

// Runs run.template operator()<rows>() (a lambda templated on the row
// count R) for rows in [1, kSkinnyRows]: one instantiation per row count,
// so the rows' registers are named at compile time. False for more rows.
template <int R = 1>
bool dispatch_rows(int rows, const auto& run) {
  if constexpr (R > kSkinnyRows) {
    return false;
  } else {
    if (rows == R) return run.template operator()<R>(), true;
    return dispatch_rows<R + 1>(rows, run);
  }
}

// Each version's entry points (dense_skinny_<version>.cpp): false where the
// rows are more than kSkinnyRows. requires: in % kLanes == 0 and a CPU with
// the version's instructions.
bool forward_avx512(int rows, int in, int out, const float* x, const float* w, float* y);
bool backward_avx512(int rows, int in, int out, const float* x, const float* dy, const float* w,
                     float* dw, float* dx);
bool backward_avx2(int rows, int in, int out, const float* x, const float* dy, const float* w,
                   float* dw, float* dx);

}  // namespace histocnn::cpu::dense_skinny
