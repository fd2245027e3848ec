// Our fused kernels for a first conv block: a direct convolution over few
// input channels (RGB) with bias, ReLU and max pooling in one pass, and its
// backward (ReLU' + pool scatter + weight and bias gradients) in another.
//
// Why: oneDNN 2.6 runs conv1 (3 input channels, 32 outputs, 3x3) at 124-184
// GFLOP/s on two cores against 315-355 for the other convolutions; its
// weight gradient splits over at most images x 2 output-channel blocks
// threads (2 threads for a 1-image slice); and the unfused block writes and
// reads back conv1's output before pooling (251 MB at 200 px and batch 50 in
// fp32, or one slice of it when micro-batched). Here the convolution
// output lives only in registers: forward reads the plain NCHW input and
// writes the pooled map and its argmax bytes; backward reads the input, the
// pooled map's gradient and the argmax, and writes only the weight and
// bias gradients (nobody needs the image's gradient).
//
// Arithmetic: fp32 from the fp32 input and master weights in both precisions
// (with --precision bf16 only the pooled map is rounded to bf16), fused
// multiply-adds in a fixed order; the weight gradient is summed per thread and
// the threads' sums added in thread order, so a run is reproducible for a
// given thread count. Results differ from oneDNN's in the last bits (another
// summation order), never by a rule: max and argmax as pool_kernels.h (ReLU
// first, first maximum of a window wins, windows whose maximum is 0 pass no
// gradient).
//
// Two versions, chosen at run time (kernel_isa.h): AVX-512 on groups of 16
// output channels, and AVX2 with FMA (conv_pool_avx2.cpp) on groups of 8,
// for oneDNN's 8-channel blocks on CPUs without AVX-512; both give the same
// bits. Where neither runs (no AVX2, or oneDNN capped below it by
// ONEDNN_MAX_CPU_ISA) the step keeps oneDNN's convolution and our pool
// kernels. tests/test_cpu_conv_pool_kernels.cpp checks both passes of each
// version against a double-precision reference.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <string>
#include <vector>

#include "backends/cpu/pool_kernels.h"

namespace histocnn::cpu {

// The geometry of a fused block: input [n][in_c][in_h][in_w], fp32 plain
// NCHW, already padded (the convolution itself pads nothing); a kernel x
// kernel convolution with stride 1 to out_c channels, then pool x pool max
// pooling with stride pool (a trailing row or column that fills no window is
// dropped, as in Keras and PyTorch).
struct ConvPoolGeometry {
  int n = 0, in_c = 0, in_h = 0, in_w = 0;
  int out_c = 0, kernel = 0, pool = 0;
  int conv_h() const { return in_h - kernel + 1; }
  int conv_w() const { return in_w - kernel + 1; }
  int out_h() const { return conv_h() / pool; }
  int out_w() const { return conv_w() / pool; }
};

// Why the fused kernels (the version that runs here) cannot run this block
// with its pooled map in `pooled`'s layout, in a few words; "" when they
// can. They take up to 4 input channels, kernels 1-5, pools 2-4, out_c a
// multiple of the version's group (16 for AVX-512, 8 for AVX2), and pooled
// layouts whose lanes come in such groups with no padding channels
// (nChw16c, nChw8c, nhwc).
std::string conv_pool_unsupported(const ConvPoolGeometry& g, const LaneLayout& pooled);
// Whether this machine runs a version: machine_kernel_isa() of at least
// AVX2 (ONEDNN_MAX_CPU_ISA caps our kernels too, so a capped run is the same
// computation on every x86 CPU), within the tests' cap.
bool conv_pool_available();
// The version that runs: "avx512" or "avx2" ("portable" where none does).
std::string conv_pool_isa();
// Tests: run at most the version named, "avx512" (the default: the best the
// machine allows), "avx2" or "portable" (none: conv_pool_available() is
// false); another name is an Error.
void cap_conv_pool(const std::string& isa);

// Floats of scratch the passes need for `threads` OpenMP threads.
size_t conv_pool_scratch_floats(const ConvPoolGeometry& g, int threads);

// requires: conv_pool_available(), conv_pool_unsupported(g, out) == "";
//           x: g's input; weights [out_c][in_c][kernel][kernel] (OIHW) and
//           bias [out_c]; pooled (f32 or bf16, `type`) and argmax (one byte
//           per pooled element) in layout `out` (n, out_h, out_w of g);
//           scratch: conv_pool_scratch_floats(g, omp_get_max_threads()).
// ensures:  pooled = max over each window of ReLU(conv(x) + bias), rounded
//           to bf16 when type is bf16; argmax = ky * pool + kx of the
//           window's first maximum (of the values before rounding), plus
//           kArgmaxNotPositive where that maximum is not > 0 (pool_kernels.h:
//           the backward pass learns it from the byte instead of reading the
//           pooled map back; at 200 px and batch 50, 63 of the 165 MB it
//           read).
void conv_pool_forward(const float* x, const ConvPoolGeometry& g, const float* weights,
                       const float* bias, dnnl::memory::data_type type, void* pooled,
                       uint8_t* argmax, const LaneLayout& out, float* scratch);

// requires: as forward, with argmax from it and d_pooled the gradient of
//           its pooled map (same type and layout).
// ensures:  d_weights (OIHW) and d_bias overwritten with the loss's
//           gradients: each pooled element's gradient, where its value is
//           > 0, flows to its window's maximum, and from there to the
//           weights and bias that produced it.
void conv_pool_backward(const float* x, const ConvPoolGeometry& g, dnnl::memory::data_type type,
                        const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                        float* d_weights, float* d_bias, float* scratch);

}  // namespace histocnn::cpu
