// Our own max-pool kernels for the CPU step, in place of oneDNN's max pooling
// and the ReLU backward on the pooled map. Why: oneDNN 2.6's max pooling over
// conv1's output (200 px, 32 channels) moves ~2 G elements/s on two cores,
// 3-4x below memory bandwidth — forward and backward of the three pools were
// ~30% of a training step (docs/results/cpu-pool-kernels.md). Ours:
//   * vectorises over the channel lanes the layout keeps contiguous (16 in
//     nChw16c, C in nhwc), reading each window once;
//   * records where each window's maximum was as one byte per pooled element
//     (as the CUDA kernels do), so backward never reads the conv output, and
//     in the same byte whether the pooled value is positive, so backward
//     never reads the pooled map either;
//   * fuses ReLU' on the pooled map, the scatter to the window's maximum and
//     the zero fill into one pass that writes each element of d_act once.
// Tie rule: the first maximum in row-major window order, as
// reference::maxpool_backward. A window whose maximum is <= 0 passes no
// gradient (ReLU' on the pooled value: max and ReLU commute): its argmax
// byte carries kArgmaxNotPositive.
//
// The arithmetic is the row functions in pool_kernels.cpp: AVX-512 and AVX2
// intrinsics (chosen at run time) and portable loops;
// tests/test_cpu_pool_kernels.cpp checks all three against the reference
// layers in every layout and both precisions.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <optional>
#include <string>

#include "core/argmax_byte.h"
#include "core/bf16.h"

namespace histocnn::cpu {

// a / b rounded up, for positive counts.
inline int ceil_div(int a, int b) {
  return (a + b - 1) / b;
}

// The argmax byte of every pool kernel of ours on the CPU (this file's,
// conv_pool_kernels.h's and winograd_pool_kernels.h's) is core/argmax_byte.h's:
// the window position of the first maximum, flagged kArgmaxNotPositive where
// the stored pooled value is not > 0, so no backward pass reads a pooled map
// back (conv2's at 200 px and batch 50: 15 MB).

// Where element (n, c, y, x) of a 4-D activation lives, for layouts that keep
// `lanes` channels contiguous: at
//   n * image + (c / lanes) * block + y * row + x * column + c % lanes
// (elements). nChw16c: lanes 16; nhwc: lanes C, one block; nchw: lanes 1.
// Padding channels of the last block (C not a multiple of lanes) are pooled
// like the others: they hold zeros.
struct LaneLayout {
  int n = 0, h = 0, w = 0;
  int blocks = 0, lanes = 0;
  int64_t image = 0, block = 0, row = 0, column = 0;
};

// The lane layout of a oneDNN activation descriptor of type f32 or bf16, or
// nothing when its layout is another (images blocked together, padded
// spatial dims, two-level blocking): the step then keeps oneDNN's pooling.
std::optional<LaneLayout> lane_layout(const dnnl::memory::desc& md);

// Whether a p x p, stride-p, unpadded max pool from `in` to `out` can run on
// our kernels: same images, lanes and blocks, out = floor(in / p), p <= 8.
bool poolable(const LaneLayout& in, const LaneLayout& out, int p);

// requires: poolable(in, out, p); x in `in`'s layout; y and argmax in
//           `out`'s (argmax: one byte per element, same strides).
// ensures:  y = the max of each window — with `relu`, max(0, that max), the
//           ReLU that precedes the pool applied to the max instead (max and
//           ReLU commute) — and argmax = ky * p + kx of its first maximum,
//           plus kArgmaxNotPositive where y is not > 0.
void max_pool_forward(const float* x, const LaneLayout& in, float* y, uint8_t* argmax,
                      const LaneLayout& out, int p, bool relu = false);
void max_pool_forward(const Bf16* x, const LaneLayout& in, Bf16* y, uint8_t* argmax,
                      const LaneLayout& out, int p, bool relu = false);

// requires: poolable(in, out, p); d_pooled and argmax (from the forward
//           pass) in `out`'s layout; d_act in `in`'s.
// ensures:  every element of d_act written: d_pooled where it was its
//           window's maximum and the argmax byte is not flagged (the pooled
//           value is > 0), else 0 (also the rows and columns past the last
//           whole window).
void max_pool_relu_backward(const float* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                            float* d_act, const LaneLayout& in, int p);
void max_pool_relu_backward(const Bf16* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                            Bf16* d_act, const LaneLayout& in, int p);

// The same on untyped tensors of `type` (f32 or bf16), as the step holds them.
void max_pool_forward(dnnl::memory::data_type type, const void* x, const LaneLayout& in, void* y,
                      uint8_t* argmax, const LaneLayout& out, int p, bool relu = false);
void max_pool_relu_backward(dnnl::memory::data_type type, const void* d_pooled,
                            const uint8_t* argmax, const LaneLayout& out, void* d_act,
                            const LaneLayout& in, int p);

// Which version runs for `lanes` lanes: "avx512" (lanes in sixteens, on
// CPUs with AVX-512), "avx2" (in eights, on CPUs with AVX2) or "portable".
std::string pool_kernels_isa(int lanes);
// Tests: the highest version the kernels may take, "avx512" (the default:
// the best the CPU and the lanes allow), "avx2" or "portable".
void cap_pool_kernels(const std::string& isa);

}  // namespace histocnn::cpu
