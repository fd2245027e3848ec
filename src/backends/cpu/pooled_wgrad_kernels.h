// The weight and bias gradients of a convolution followed by a max pool of
// ours, taken from the pooled gradient (the CPU step's counterpart of the
// CUDA step's pooled_wgrad_kernels.h).
//
// Why: oneDNN's Winograd weight gradient of conv2 was the CPU step's largest
// primitive at 200x200, batch 50 on two cores (22 ms of a ~115 ms step,
// docs/results/cpu-scaling-16core.md), and it splits its work over the
// images: 10 images do not split over 16 threads. With the bias and ReLU
// before the pool, the conv output's gradient is zero except at each
// window's maximum (where our pool kernels record an argmax byte): a quarter
// of the terms at 2x2, fewer where the pooled value is not positive (the
// byte's kArgmaxNotPositive flag, pool_kernels.h: the pooled map itself is
// not read).
//
//   dW[o, c, r, s] = sum over images and pooled positions p of o with a
//                    positive pooled value: d_pooled * src[c, at(p) + (r, s) - pad]
//   db[o]          = the sum of the same d_pooled
//
// The work is split into items: a set of output channels (16 at a time:
// whole blocks of nChw16c, or of nChw8c on AVX2 CPUs) over a band of pooled rows of some images.
// The blocks are shared out first (a thread's blocks read each tile's input once), then on more
// than one thread the images and rows too, about four units a thread, a
// thread taking whole units of every set (the sets' costs differ most, with
// their share of positive pooled values) as it comes free: tissue makes the
// costs uneven, and so does a busy host (a set a thread, the threads'
// times differed by 3-11 % on 2 threads of the 2-core VM, and the whole
// set's input missed the cache: docs/results/cpu-pooled-balance.md). Each item sums
// its terms into partial sums of its own; then each output channel adds its
// set's partials in item order. The items depend on the shapes and the
// thread count alone: the same bits run to run, and on another thread count
// the same sums, perhaps in another order. (Before, only the channels were
// shared out: at 16 threads each thread held 2 of conv2's 32, scanned their
// whole block for those 2, and the thread with the busiest channels set the
// pace: docs/results/cpu-pooled-wgrad.md.)
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <string>

#include "backends/cpu/pool_kernels.h"
#include "core/host_buffers.h"

namespace histocnn::cpu {

// The convolution (kernel x kernel, stride 1, `pad` on each side, in_c ->
// out_c channels) and the pool x pool max pool after it.
struct PooledConv {
  int in_c = 0, out_c = 0, kernel = 0, pad = 0, pool = 0;
};

// Whether pooled_weight_gradient can take it: src (`in`) and the pooled
// map (`out`) of the same images, their blocks holding the channels, a
// pool of 2 to 8, and a conv output (in.h + 2 pad - kernel + 1 by the same
// across) that holds every pooled window.
bool pooled_wgrad_applies(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// Whether the step takes it: it applies and a vector version runs (AVX-512
// on 16-channel blocks, AVX2 on oneDNN's 8-channel blocks of AVX2 CPUs).
// The portable version is their reference, not a fallback: on an AVX2 CPU
// (AMD EPYC, 2 threads, 200 px, batch 50) it made conv2's backward 682 ms a
// step against oneDNN's 134 ms (docs/results/cpu-avx2.md), so the step keeps
// oneDNN's weight gradient wherever no vector version can run.
bool pooled_wgrad_fast(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// The items of the file comment for `threads` threads: `sets` of
// `channels` output channels (as many 16-channel blocks a set as the
// threads allow), each over image_groups x bands items (band_rows pooled
// rows of images_per_item images): one item a set on one thread, else
// about kItemsPerThread x threads units of every set, the images split
// before the rows.
struct PooledWgradSplit {
  static constexpr int kGroup = 16, kItemsPerThread = 4;
  int channels = 0, sets = 0, bands = 0, band_rows = 0, images_per_item = 0, image_groups = 0;
  int items() const { return sets * image_groups * bands; }
  // Whether a set has several items, whose partial sums are then added up.
  bool partials() const { return items() > sets; }
};
PooledWgradSplit pooled_wgrad_split(const LaneLayout& out, const PooledConv& conv, int threads);

// The scratch pooled_weight_gradient needs on `threads` threads (floats):
// none where each set is one item (one thread: it writes the set's sums), else
// one item's partial sums (its channels x kernel^2 taps x in's blocks x
// lanes, and its biases) per item.
size_t pooled_wgrad_scratch_floats(const LaneLayout& in, const LaneLayout& out,
                                   const PooledConv& conv, int threads);

// requires: pooled_wgrad_applies(in, out, conv); src in `in`'s layout (the
//           conv's input); d_pooled and argmax (from our pool kernels) in
//           `out`'s; dw out_c x in_c x kernel x kernel floats (OIHW), db
//           out_c floats.
// ensures:  dw and db = the sums of the file comment, added to what they
//           hold when `accumulate` (a batch's later slices); scratch grown to
//           pooled_wgrad_scratch_floats(..., OpenMP's threads) if it was
//           smaller (size it so beforehand, and no call grows it; each call
//           still takes one item's and one channel's sums a thread).
void pooled_weight_gradient(dnnl::memory::data_type type, const void* src, const LaneLayout& in,
                            const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                            const PooledConv& conv, float* dw, float* db, bool accumulate,
                            HostFloats& scratch);

// Which version runs: "avx512" (16-channel blocks in and out, kernel 3 with
// up to 32 input channels or kernel 5 with up to 16, a pool of at most 4),
// "avx2" (8-channel blocks in and out, kernel 3, a pool of at most 2) or
// "portable".
std::string pooled_wgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// Tests: the highest version the kernel may take, "avx512" (the default:
// the best the CPU, oneDNN's ISA and the shapes allow), "avx2" or
// "portable".
void cap_pooled_wgrad(const std::string& isa);

}  // namespace histocnn::cpu
