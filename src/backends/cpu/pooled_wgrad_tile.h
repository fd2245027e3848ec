// Internal to the pooled weight gradient (pooled_wgrad_kernels.h): the tile
// its versions walk, shared by pooled_wgrad_kernels.cpp (portable and
// AVX-512) and pooled_wgrad_avx2.cpp (AVX2).
#pragma once

#include <cstdint>

#include "backends/cpu/pooled_wgrad_kernels.h"
#include "core/bf16.h"

namespace histocnn::cpu::pooled_wgrad {

// A tile of pooled positions: its input (at 2x2 and kernel 3, 6 rows of 34
// pixels; 26 KB for conv2's 32 channels in fp32) stays in a core's L1 cache
// while every output channel of the thread visits it. (Bands of 4 whole
// rows, 127 KB from L2, measured the same: the scan over the positions, not
// the loads, bounds the kernel; docs/results/cpu-pooled-wgrad.md.)
constexpr int kTileRows = 2, kTileCols = 16;

// Where a window's maximum is, by its argmax byte: (row, column) in the
// window, looked up rather than divided per term (zero past pool^2: the
// vector versions load 8 or 16 entries at once).
struct WindowOffsets {
  int8_t dy[64] = {}, dx[64] = {};
  explicit WindowOffsets(int pool) {
    for (int a = 0; a < pool * pool; ++a) dy[a] = int8_t(a / pool), dx[a] = int8_t(a % pool);
  }
};

// Image n's pooled rows [py0, py1) and columns [px0, px1), and the sums
// its terms go into: acc[tap * stride + c] (stride: the layout's channels,
// padding ones included) and bias, of output channel o (the portable
// version: plane is o's first pooled element of image n), or of the
// thread's first output channel (the vector ones, which take them all).
struct Tile {
  int n, py0, py1, px0, px1, o;
  int64_t plane;
  float* acc;
  float* bias;
  const WindowOffsets* window;
};

// The AVX2 version: whether it takes these shapes on this CPU (8-channel
// blocks in and out, kernel 3, a pool of at most 2, an image's offsets
// below 2^31, AVX2 and FMA), and output channels [o0, o1) over tile b, as
// the AVX-512 version's tile: each channel's sums in the same order.
bool avx2_fits(const LaneLayout& in, const LaneLayout& out, const PooledConv& k);
void tile_avx2(const float* src, const LaneLayout& in, const float* d_pooled, const uint8_t* argmax,
               const LaneLayout& out, const PooledConv& k, const Tile& b, int o0, int o1);
void tile_avx2(const Bf16* src, const LaneLayout& in, const Bf16* d_pooled, const uint8_t* argmax,
               const LaneLayout& out, const PooledConv& k, const Tile& b, int o0, int o1);

}  // namespace histocnn::cpu::pooled_wgrad
