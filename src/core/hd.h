// HISTOCNN_HD marks a function callable from host and device code: the
// per-element math of the CUDA kernels is written once, as such functions, and
// the CPU backend and the host tests run the very same code.
// HISTOCNN_HD_INLINE also forces inlining on the device: for a function whose
// caller's local array must stay in registers (indexed by constants only
// once the function is inlined and its loops unrolled).
#pragma once

#if defined(__CUDACC__)
#define HISTOCNN_HD __host__ __device__ inline
#define HISTOCNN_HD_INLINE __host__ __device__ __forceinline__
#else
#define HISTOCNN_HD inline
#define HISTOCNN_HD_INLINE inline
#endif

// `#pragma unroll` where nvcc compiles device code (host compilers warn on it).
#if defined(__CUDA_ARCH__)
#define HISTOCNN_DEVICE_UNROLL _Pragma("unroll")
#else
#define HISTOCNN_DEVICE_UNROLL
#endif
