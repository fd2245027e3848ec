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
// of the terms at 2x2, fewer where the pooled value is not positive.
//
//   dW[o, c, r, s] = sum over images and pooled positions p of o with a
//                    positive pooled value: d_pooled * src[c, at(p) + (r, s) - pad]
//   db[o]          = the sum of the same d_pooled
//
// The threads split the output channels (32 for conv2, 64 for conv3:
// however few the images); each thread walks the images in tiles of pooled
// positions, and every output channel it holds visits a tile while the
// tile's input is in its L1 cache. An output channel's terms are added in
// the same order (image, tile, position) on any number of threads: the same
// bits.
#pragma once

#include <cstdint>
#include <dnnl.hpp>
#include <string>

#include "backends/cpu/pool_kernels.h"

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

// requires: pooled_wgrad_applies(in, out, conv); src in `in`'s layout (the
//           conv's input); pooled, d_pooled and argmax from our pool kernels
//           in `out`'s; dw out_c x in_c x kernel x kernel floats (OIHW), db
//           out_c floats.
// ensures:  dw and db = the sums of the file comment, added to what they
//           hold when `accumulate` (a batch's later slices).
void pooled_weight_gradient(dnnl::memory::data_type type, const void* src, const LaneLayout& in,
                            const void* pooled, const void* d_pooled, const uint8_t* argmax,
                            const LaneLayout& out, const PooledConv& conv, float* dw, float* db,
                            bool accumulate);

// Which version runs: "avx512" (16-channel blocks in and out, kernel 3 with
// up to 32 input channels or kernel 5 with up to 16) or "portable".
std::string pooled_wgrad_isa(const LaneLayout& in, const LaneLayout& out, const PooledConv& conv);

// Tests: the portable version everywhere (false: back to the choice above).
void set_portable_pooled_wgrad(bool portable);

}  // namespace histocnn::cpu
