// cuDNN's convolution algorithms as the CUDA step records and ranks them:
// their names (metrics.json) and the candidates of a Find or Get call.
// Internal to the CUDA backend.
#pragma once

#include <cudnn.h>

#include <vector>

#include "backends/cuda/cuda_schedule.h"

namespace histocnn::cuda {

// cuDNN and cuBLAS take their scaling factors (alpha, beta) by address.
inline constexpr float kOne = 1, kZero = 0;

inline const char* fwd_name(int a) {
  static const char* n[] = {
      "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
      "WINOGRAD",      "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 8 ? n[a] : "?";
}
inline const char* bwd_data_name(int a) {
  static const char* n[] = {"ALGO_0",     "ALGO_1",   "FFT",
                            "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 6 ? n[a] : "?";
}
inline const char* bwd_filter_name(int a) {
  static const char* n[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD_NONFUSED", "FFT_TILING"};
  return a >= 0 && a < 6 ? n[a] : "?";
}

template <typename Perf>
std::vector<AlgorithmCandidate> candidates(const Perf* perf, int count, bool timed) {
  std::vector<AlgorithmCandidate> out;
  for (int i = 0; i < count; ++i)
    out.push_back({int(perf[i].algo), perf[i].status == CUDNN_STATUS_SUCCESS, perf[i].memory,
                   perf[i].determinism == CUDNN_DETERMINISTIC, timed ? perf[i].time : -1.0f});
  return out;
}

}  // namespace histocnn::cuda
