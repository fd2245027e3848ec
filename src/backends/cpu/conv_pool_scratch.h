// Internal to the fused first-block kernels (conv_pool_kernels.h): what
// their AVX-512 version (16 output channels a group, conv_pool_kernels.cpp)
// and AVX2 version (8 a group, conv_pool_avx2.cpp) share. Both take the
// packed weights and leave the threads' weight and bias partial sums in one
// scratch, laid out by the group's width; conv_pool_kernels.cpp packs and
// adds them up.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backends/cpu/conv_pool_kernels.h"

namespace histocnn::cpu::conv_pool {

// Scratch, in floats: the packed weights [group][in_c][k][k][lanes], then per
// thread the dense gradient rows (the pool's P rows of each of the up to
// `groups_at_once` groups a backward pass takes) and the weight and bias
// partial sums ([group][taps][lanes], then [group][lanes]). Each part is
// rounded up to whole 64-byte lines.
struct ScratchLayout {
  size_t packed, row, rows, partial, per_thread;
  size_t rows_of(int thread) const { return packed + size_t(thread) * per_thread; }
  size_t partial_of(int thread) const { return rows_of(thread) + rows * row; }
};
inline size_t whole_lines(size_t floats) {
  return (floats + 15) / 16 * 16;
}
inline ScratchLayout scratch_layout(const ConvPoolGeometry& g, int lanes, int groups_at_once) {
  const size_t taps = size_t(g.in_c) * g.kernel * g.kernel;
  ScratchLayout s;
  s.packed = whole_lines(size_t(g.out_c) * taps);
  s.row = whole_lines(size_t(g.out_w()) * g.pool * lanes);
  s.rows = size_t(groups_at_once) * g.pool;
  s.partial = whole_lines(size_t(g.out_c) * (taps + 1));
  s.per_thread = s.rows * s.row + s.partial;
  return s;
}

// The AVX2 version's groups and what one backward pass takes of them.
constexpr int kAvx2Lanes = 8, kAvx2GroupsAtOnce = 1;
inline ScratchLayout avx2_scratch_layout(const ConvPoolGeometry& g) {
  return scratch_layout(g, kAvx2Lanes, kAvx2GroupsAtOnce);
}

// Pooled element (n, c, y, x) of `out`, c the first channel of a group.
inline int64_t pooled_at(const LaneLayout& out, int n, int c, int y, int x) {
  return int64_t(n) * out.image + int64_t(c / out.lanes) * out.block + int64_t(y) * out.row +
         int64_t(x) * out.column + c % out.lanes;
}

// The AVX2 passes (conv_pool_avx2.cpp), on 8-lane groups; the arguments as
// conv_pool_forward's and conv_pool_backward's, with `packed` the weights
// [out_c / 8][in_c][k][k][8]. Backward leaves thread t's sums at
// scratch + avx2_scratch_layout(g).partial_of(t), in 8-lane groups.
void forward_avx2(const float* x, const ConvPoolGeometry& g, const float* packed, const float* bias,
                  dnnl::memory::data_type type, void* pooled, uint8_t* argmax,
                  const LaneLayout& out);
void backward_avx2(const float* x, const ConvPoolGeometry& g, dnnl::memory::data_type type,
                   const void* d_pooled, const uint8_t* argmax, const LaneLayout& out,
                   float* scratch);

}  // namespace histocnn::cpu::conv_pool
