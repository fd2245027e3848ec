// A later block's forward in one pass of ours: a 3x3 convolution by Winograd
// F(4x4, 3x3), its bias and ReLU, and the 2x2 max pool with its argmax
// bytes, the conv output never written (the CPU step's counterpart of the
// fused first block, conv_pool_kernels.h).
//
// Why: oneDNN 2.6's Winograd forward of conv2 was the CPU step's largest
// item at 200x200, batch 50 on two cores (21.7 ms of a 75 ms step,
// docs/results/side-by-side-2core.md, 2026-12-05): ~0.88 ms a 2-image call,
// where its multiply-adds alone (36 x 32 x 32 per 4x4 tile, 576 tiles an
// image) need ~0.2 ms an image at two 512-bit FMAs a cycle. Its GEMMs are
// built for many channels; with 32 they are short. And a 4x4 output tile is
// exactly four 2x2 pool windows, so the pool can take the tile straight from
// the output transform's registers.
//
// How (Lavin and Gray's F(4x4, 3x3), points 0, +-1, +-2, infinity):
//   U = G g G^T       per (output, input channel), 6x6, once per step;
//   V = B^T d B       per 6x6 input tile and input channel;
//   M = sum over c of U[c] (.) V[c]   36 products of (tiles x in_c) by
//                                     (in_c x out_c), our register-tiled GEMM;
//   Y = A^T M A       the 4x4 outputs, + bias, ReLU, then each 2x2 window's
//                     first maximum (max and argmax as pool_kernels.h).
// The threads split (image, row of tiles); a row's tiles go in groups of up
// to 12, each group's V and M (~55-110 KB) staying in L2. Every output is
// summed by one thread in a fixed order: the same bits on any thread count.
//
// Arithmetic: fp32 transforms, GEMMs and weights on maps of fp32 or (with
// --precision bf16) bf16; in bf16 only the pooled maximum is rounded, once,
// so the result is the fp32 kernel's on the same input, rounded. (oneDNN 2.6
// has no bf16 Winograd: there the block ran its direct bf16 convolution,
// and bf16 lost its edge over fp32, docs/results/side-by-side-2core.md.)
// Winograd's transforms round differently from a direct convolution, by a
// few fp32 ulps of the sums' magnitudes, as oneDNN's Winograd does (its
// accuracy checked in docs/results/cpu-winograd.md). Two versions, like the
// fused first block's: AVX-512 on 16-channel blocks, and AVX2 with FMA on
// 8-channel blocks (winograd_pool_avx2.cpp), where oneDNN has no Winograd
// at all; both give the same bits. Elsewhere the step keeps oneDNN's
// convolution.
// tests/test_cpu_winograd_pool.cpp checks it against the reference
// convolution and pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "backends/cpu/pool_kernels.h"
#include "backends/cpu/pooled_wgrad_kernels.h"
#include "core/host_buffers.h"

namespace histocnn::cpu {

// Whether winograd_pool_forward (the version that runs here) can take the
// block: kernel 3, pad 0 or 1, pool 2; the input (`in`) and the pooled map
// (`out`) of the same images in the version's blocks (nChw16c for AVX-512,
// nChw8c for AVX2) holding exactly in_c and out_c channels; out the floor of
// the conv output / 2, at least 1x1.
bool winograd_pool_applies(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);
// Whether this machine runs a version: machine_kernel_isa() of at least AVX2,
// within the tests' cap.
bool winograd_pool_available();
// The version that runs: "avx512" or "avx2" ("portable" where none does).
std::string winograd_pool_isa();
// Tests: run at most the version named, "avx512" (the default: the best the
// machine allows), "avx2" or "portable" (none); another name is an Error.
void cap_winograd_pool(const std::string& isa);

// Floats of the transformed weights: 36 x in_c x out_c.
size_t winograd_weights_floats(const PooledConv& conv);
// requires: w OIHW (out_c x in_c x 3 x 3); u winograd_weights_floats(conv).
// ensures:  u[(xi * in_c + c) * out_c + o] = (G w[o][c] G^T)[xi], computed
//           in double and rounded once.
void winograd_transform_weights(const float* w, const PooledConv& conv, float* u);

// requires: winograd_pool_available(), winograd_pool_applies(in, out, conv);
//           x (fp32 or bf16) in `in`'s layout; u from
//           winograd_transform_weights; bias out_c floats; pooled (x's
//           type) and argmax (one byte per element) in `out`'s layout.
// ensures:  pooled = the max over each 2x2 window of ReLU(conv(x) + bias),
//           computed in fp32 and rounded to bf16 when pooled is bf16;
//           argmax = ky * 2 + kx of its first maximum (after the ReLU, of
//           the fp32 values), plus kArgmaxNotPositive where the stored
//           maximum is not > 0, for every element of `out`; scratch grown if
//           smaller than the threads need (size it with
//           winograd_pool_scratch_floats first, and no call allocates).
void winograd_pool_forward(const float* x, const LaneLayout& in, const float* u, const float* bias,
                           float* pooled, uint8_t* argmax, const LaneLayout& out,
                           const PooledConv& conv, HostFloats& scratch);
void winograd_pool_forward(const Bf16* x, const LaneLayout& in, const float* u, const float* bias,
                           Bf16* pooled, uint8_t* argmax, const LaneLayout& out,
                           const PooledConv& conv, HostFloats& scratch);
// The same on untyped maps of `type` (f32 or bf16), as the step holds them.
void winograd_pool_forward(dnnl::memory::data_type type, const void* x, const LaneLayout& in,
                           const float* u, const float* bias, void* pooled, uint8_t* argmax,
                           const LaneLayout& out, const PooledConv& conv, HostFloats& scratch);

// Floats of scratch for `threads` threads: each a group's V and M.
size_t winograd_pool_scratch_floats(const PooledConv& conv, int threads);

}  // namespace histocnn::cpu
