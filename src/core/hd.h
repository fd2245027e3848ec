// HISTOCNN_HD marks a function callable from host and device code: the
// per-element math of the CUDA kernels is written once, as such functions, and
// the CPU backend and the host tests run the very same code.
#pragma once

#if defined(__CUDACC__)
#define HISTOCNN_HD __host__ __device__ inline
#else
#define HISTOCNN_HD inline
#endif
