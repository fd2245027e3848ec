// The data gradient of a convolution followed by a max pool of ours, taken
// from the pooled gradient: the companion of pooled_wgrad_kernels.h. With
// both, a block's backward runs no pool backward and writes no conv-output
// gradient at all.
//
// Why: after the weight gradient (pooled_wgrad_kernels.h), oneDNN's Winograd
// data gradient of conv2 was the CPU step's largest primitive at 200x200,
// batch 50 on two cores (0.74 ms a 2-image slice, ~18 ms of a ~98 ms step;
// docs/results/cpu-pooled-dgrad.md), and it needs the conv output's gradient
// written out in full by the pool backward, three quarters of it zeros.
//
//   d_src[c, at(p) + (r, s) - pad] += d_pooled(p) * W[o, c, r, s]
//       for every pooled position p of output channel o with a positive
//       pooled value (the ReLU before the pool), and every tap (r, s).
//
// How: a pooled position's terms, over all output channels, fall in one
// (pool + kernel - 1)^2 patch of d_src (4 x 4 at 2x2 and kernel 3). The
// kernel sums them in that patch, grouped by where in the window each
// channel's maximum is (one fixed set of taps per group), and adds the patch
// to d_src once. The threads split (image, band of d_src rows), about four
// bands a thread, each to the next thread free (the bands' costs follow
// the tissue: docs/results/cpu-pooled-balance.md); a pooled
// row whose patch straddles two bands is summed by both, each adding only
// its own rows, so the bands' edges are rows that the fewest patches
// straddle (pooled_dgrad_bands). Every element of d_src receives the same
// patches in the same order whatever the bands and threads: the same bits
// on any thread count.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <string>
#include <utility>

#include "backends/cpu/pool_kernels.h"
#include "backends/cpu/pooled_wgrad_kernels.h"
#include "core/host_buffers.h"

namespace histocnn::cpu {

// Whether pooled_data_gradient can take it: the pooled map (`out`) and
// d_src (`in`) of the same images, as pooled_wgrad_applies.
bool pooled_dgrad_applies(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// Whether a vector version runs, kernel 3 and pool 2 with the same blocks on
// both sides: AVX-512 on 16-channel blocks, on a CPU and oneDNN ISA with
// AVX-512, or AVX2 on 8-channel blocks (oneDNN's on AVX2 CPUs), on a CPU
// and oneDNN ISA with AVX2. The step takes this route only then, oneDNN's
// data gradient otherwise (the portable version is the readable statement
// of the same sums, for tests and other CPUs).
bool pooled_dgrad_fast(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// How each image's d_src rows are cut into bands for `threads` threads:
// `count` bands of `rows` rows (a multiple of the pool; the first band
// `shift` rows shorter, the last one ending at the map's height). About four
// bands a thread, at least two pooled rows each. The edges lie where
// (edge + pad) is a multiple of the pool: there one pooled row's patch
// straddles an edge at 2x2 with kernel 3, where an edge on a pool row
// (pad 1) has two. conv3's bands at batch 10 on 16 threads (8 rows) sum
// 1.24x the map's pooled rows so, 1.48x with edges on pool rows
// (cpu-scaling-16core.md).
struct PooledDgradBands {
  int rows = 0, shift = 0, count = 0;
  // Band i's rows [first, second) of a map of `height` rows.
  std::pair<int, int> band(int i, int height) const;
  // The most rows a band of such a map has.
  int longest(int height) const;
};
PooledDgradBands pooled_dgrad_bands(const LaneLayout& in, const PooledConv& conv, int threads);

// The weights as the kernels read them: per block of d_src's layout `in`
// (in.lanes input channels), output channel and tap, the block's channels
// in a row, zero past in_c ([in.blocks][out_c][kernel^2][in.lanes]): a
// term's taps of one block lie in one run, at offsets the vector versions
// know at compile time. From OIHW floats; `bf16`: each rounded to bf16 (the
// convolution's operands in bf16 mode, as oneDNN's).
// requires: arranged holds in.blocks * in.lanes * out_c * kernel^2 floats.
void arrange_dgrad_weights(const float* oihw, const PooledConv& conv, const LaneLayout& in,
                           bool bf16, float* arranged);

// Floats of bf16's `sums` for `threads` threads: a band of d_src (its
// longest, every channel block) a thread. Enough for any `in` of fewer
// images (their bands are no longer).
size_t pooled_dgrad_sums_floats(const LaneLayout& in, const PooledConv& conv, int threads);

// requires: pooled_dgrad_applies(in, out, conv); d_pooled and argmax (from
//           our pool kernels, its flag saying where the pooled value is not
//           positive) in `out`'s layout; `arranged` from
//           arrange_dgrad_weights with `in`; d_src in `in`'s layout.
// ensures:  d_src = the sums of the file comment, every element written
//           (padding channels and rows no window covers: zero). bf16: each
//           thread adds a band's patches in fp32 in its part of `sums`,
//           then rounds them once into d_src; `sums` grown to
//           pooled_dgrad_sums_floats(in, conv, OpenMP's threads) if it was
//           smaller (size it so beforehand, and no call grows it). fp32:
//           `sums` unused.
void pooled_data_gradient(dnnl::memory::data_type type, const void* d_pooled, const uint8_t* argmax,
                          const LaneLayout& out, const float* arranged, const PooledConv& conv,
                          void* d_src, const LaneLayout& in, HostFloats& sums);

// "avx512", "avx2" or "portable": which version pooled_data_gradient runs.
std::string pooled_dgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// Tests: the highest version the kernel may take, "avx512" (the default:
// the best the CPU, oneDNN's ISA and the layouts allow), "avx2" or
// "portable".
void cap_pooled_dgrad(const std::string& isa);

}  // namespace histocnn::cpu
