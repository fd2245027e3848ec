// Our own max-pool kernels for the CUDA step, in place of cudnnPoolingForward,
// cudnnActivationBackward, cudnnPoolingBackward and cudnnConvolutionBackwardBias
// (together 52% of a step's kernel time at 200x200, batch 50 on an H200:
// docs/results/gpu-h200.md). Why ours is faster:
//   * the forward pass records where each window's maximum was (one byte per
//     pooled element), so the backward pass never reads the conv output again
//     and the conv output dies right after pooling (a smaller plan); and in
//     the same byte whether the pooled value is positive (core/argmax_byte.h),
//     so no backward pass reads the pooled map back either;
//   * the backward pass fuses ReLU', the max-pool scatter and the conv bias
//     gradient (a per-channel sum over N*H*W of the conv's output gradient)
//     into one pass that writes every element of d_act once, coalesced;
//   * the bias gradient is reduced in a fixed order (per plane, then per
//     channel over the batch), so it is deterministic, as the self-test needs.
//
// The arithmetic is the __host__ __device__ functions below: the kernels are
// grids over them and tests/test_cuda_kernels.cpp runs them on the host
// against the reference layers (nn/reference.h). Tie rule: the first maximum
// in row-major window order, as reference::maxpool_backward.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/map_layout.h"
#include "core/argmax_byte.h"
#include "core/bf16.h"
#include "core/hd.h"

namespace histocnn::cuda {

// One plane's pooling geometry: an h x w map, p x p windows of stride p, no
// padding, floor division (rows/columns past the last whole window are not
// pooled and get zero gradient).
struct PoolGeometry {
  int h, w, p;
  HISTOCNN_HD int pooled_h() const { return h / p; }
  HISTOCNN_HD int pooled_w() const { return w / p; }
};

struct WindowMax {
  float value;
  uint8_t at;  // ky * p + kx of the first maximum (p <= 8: at most 63)
};

// The maximum of window (oy, ox) of one plane and where it is. T: float or
// Bf16 (--precision bf16), compared as floats. The plane's element (y, x) is
// plane[y * row_stride + x * col_stride] (MapLayout: channels first or last).
template <typename T>
HISTOCNN_HD WindowMax window_max(const T* plane, const PoolGeometry& g, int oy, int ox,
                                 int64_t row_stride, int64_t col_stride) {
  WindowMax m{-INFINITY, 0};
  for (int ky = 0; ky < g.p; ++ky)
    for (int kx = 0; kx < g.p; ++kx) {
      const float v = load(plane, (oy * g.p + ky) * row_stride + (ox * g.p + kx) * col_stride);
      if (v > m.value) m = {v, uint8_t(ky * g.p + kx)};
    }
  return m;
}
// A packed row-major plane (channels first).
template <typename T>
HISTOCNN_HD WindowMax window_max(const T* plane, const PoolGeometry& g, int oy, int ox) {
  return window_max(plane, g, oy, ox, g.w, 1);
}

// The gradient reaching element (y, x) of one conv-output plane from the
// pooled gradient, with the ReLU that precedes the pool folded in:
// d_pooled where (y, x) is its window's maximum and the window passes (its
// argmax byte not flagged: the pooled value is > 0), else 0. With p == 1
// (no pool, no argmax) plain ReLU backward: ReLU'(relu_out) * d_pooled,
// relu_out being the ReLU's output; with p > 1 `relu_out` is not read (may
// be null). `relu_out`, `d_pooled` and `argmax` point at the plane's pooled
// element (0, 0); its element (oy, ox) is at oy * row_stride + ox * col_stride.
template <typename T>
HISTOCNN_HD float pool_relu_backward_at(const T* relu_out, const T* d_pooled, const uint8_t* argmax,
                                        const PoolGeometry& g, int y, int x, int64_t row_stride,
                                        int64_t col_stride) {
  const int oy = y / g.p, ox = x / g.p;
  if (oy >= g.pooled_h() || ox >= g.pooled_w()) return 0.0f;
  const int64_t j = oy * row_stride + ox * col_stride;
  if (g.p == 1) return load(relu_out, j) > 0 ? load(d_pooled, j) : 0.0f;
  // A flagged byte equals no position: one compare tests both.
  return int(argmax[j]) == (y - oy * g.p) * g.p + (x - ox * g.p) ? load(d_pooled, j) : 0.0f;
}
// A packed row-major pooled plane (channels first).
template <typename T>
HISTOCNN_HD float pool_relu_backward_at(const T* relu_out, const T* d_pooled, const uint8_t* argmax,
                                        const PoolGeometry& g, int y, int x) {
  return pool_relu_backward_at(relu_out, d_pooled, argmax, g, y, x, g.pooled_w(), 1);
}

// One pooling layer's maps: `n` images of the pool's input `act` (its
// channels, size and layout) and the pooled output, p x p windows. Under
// --channels-last every map is channels last except the last block's pooled
// map, which the dense part reads as PyTorch's flatten (channels first): the
// forward pool writes it so, and its backward pass reads it so.
struct PoolMaps {
  int n;
  MapLayout act;
  bool pooled_channels_last;
  int p;
  HISTOCNN_HD PoolGeometry geometry() const { return {act.h, act.w, p}; }
  HISTOCNN_HD MapLayout pooled() const {
    return {act.c, act.h / p, act.w / p, pooled_channels_last};
  }
};

// Rows of the bias gradient's partial sums [rows, C] that the backward pass
// writes (channel_sum_rows), which launch_column_sums adds.
HISTOCNN_HD int bias_partial_rows(const PoolMaps& m) {
  return channel_sum_rows(m.n, m.act);
}

// ---- Launchers (device pointers; asynchronous on `stream`). ----

// The pooled value of a window whose maximum is `m`, for channel `channel`:
// with `bias` (not null), the conv's bias and ReLU applied after the max —
// max(ReLU(a + b)) = ReLU(max(a) + b), as both are monotone — so the conv
// writes its raw output and no pass over the full map adds the bias or clamps.
HISTOCNN_HD float pooled_value(float m, const float* bias, int channel) {
  if (!bias) return m;
  const float v = m + bias[channel];
  return v > 0 ? v : 0.0f;
}

// Element j of a pooled map and its argmax byte for a window whose maximum
// is `m`: pooled_value(m.value, bias, channel) as stored in T, and the byte
// from that stored value (argmax_byte), so a bf16 value rounded to zero is
// flagged as the backward's ReLU' on it would have said.
template <typename T>
HISTOCNN_HD void write_pooled(T* pooled, uint8_t* argmax, int64_t j, const WindowMax& m,
                              const float* bias, int channel) {
  T kept;
  store(&kept, 0, pooled_value(m.value, bias, channel));
  pooled[j] = kept;
  argmax[j] = argmax_byte(m.at, load(&kept, 0));
}

// pooled = pooled_value(window maxima of act), argmax = where, flagged where
// the pooled value is not > 0 (write_pooled; one byte per pooled element, in
// the pooled map's layout). Requires 2 <= p <= 8. `bias` may be null (act
// already final). For fp32 and bf16 maps (the bias stays fp32).
void launch_max_pool_forward(const float* act, const float* bias, float* pooled, uint8_t* argmax,
                             const PoolMaps& maps, Stream stream);
void launch_max_pool_forward(const Bf16* act, const float* bias, Bf16* pooled, uint8_t* argmax,
                             const PoolMaps& maps, Stream stream);
// d_act = pool_relu_backward_at(...) for every element of act (d_act may
// alias d_pooled when p == 1); `relu_out` is read only when p == 1 (the
// ReLU's output; null otherwise: the argmax bytes carry ReLU'); when `bias_partials` is not null,
// the conv bias gradient's partial sums [bias_partial_rows(maps), C] (per plane channels first, per
// image band channels last), reduced by launch_column_sums. The sums are of the fp32 values, before
// d_act is rounded to bf16. d_act null: the bias partials only.
void launch_pool_relu_backward(const float* relu_out, const float* d_pooled, const uint8_t* argmax,
                               float* d_act, float* bias_partials, const PoolMaps& maps,
                               Stream stream);
void launch_pool_relu_backward(const Bf16* relu_out, const Bf16* d_pooled, const uint8_t* argmax,
                               Bf16* d_act, float* bias_partials, const PoolMaps& maps,
                               Stream stream);
// y[i] = pooled_value(y[i], bias, its channel), in place over `n` maps laid
// out as `layout`: a bf16 block without a pool gets its bias and ReLU here
// (cuDNN fuses them only in fp32).
void launch_bias_relu(Bf16* y, const float* bias, int n, const MapLayout& layout, Stream stream);
// out[j] = sum over rows i of in[i * cols + j], summed in a fixed order (the
// same bits every run: deterministic, unlike atomics).
void launch_column_sums(const float* in, int rows, int cols, float* out, Stream stream);

}  // namespace histocnn::cuda
