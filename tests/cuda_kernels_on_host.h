// Our CUDA kernels (pool_kernels.cu, wgrad_kernels.cu) executed on the host:
// the same __host__ __device__ functions, called in the kernels' thread
// structure (block per plane or band, strided lanes, the shuffle-down tree,
// the column-sum stripes), so host tests check the arithmetic the GPU runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "backends/cuda/bn_kernels.h"
#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/wgrad_kernels.h"
#include "nn/spec.h"

namespace histocnn::cuda::on_host {

constexpr int kBlock = 256;  // the kernels' threads per block

// __shfl_down_sync's tree over 32 lanes: lane 0's result.
inline float warp_sum_down(std::array<float, 32> v) {
  for (int offset = 16; offset > 0; offset /= 2)
    for (int lane = 0; lane + offset < 32; ++lane) v[size_t(lane)] += v[size_t(lane + offset)];
  return v[0];
}

// block_sum of pool_kernels.cu: per-warp trees, then the warps in order.
inline float block_sum(const std::vector<float>& per_thread) {
  float total = 0;
  for (size_t warp = 0; warp < per_thread.size() / 32; ++warp) {
    std::array<float, 32> lanes{};
    std::copy_n(per_thread.begin() + std::ptrdiff_t(warp * 32), 32, lanes.begin());
    total += warp_sum_down(lanes);
  }
  return total;
}

// T: float, or Bf16 (--precision bf16) as the kernels are instantiated.
// One thread per pooled element, in the pooled map's layout.
template <typename T>
void max_pool_forward(const T* act, const float* bias, T* pooled, uint8_t* argmax,
                      const PoolMaps& maps) {
  const MapLayout out = maps.pooled();
  for (int64_t j = 0; j < int64_t(maps.n) * out.c * out.h * out.w; ++j) {
    const MapCoords o = out.coords(j);
    const WindowMax m = window_max(act + maps.act.at(o.n, o.c, 0, 0), maps.geometry(), o.y, o.x,
                                   maps.act.row_stride(), maps.act.col_stride());
    store(pooled, j, pooled_value(m.value, bias, o.c));
    argmax[j] = m.at;
  }
}

// Channels first: a block per plane, its threads striding over the plane.
template <typename T>
void pool_relu_backward_first(const T* pooled, const T* d_pooled, const uint8_t* argmax, T* d_act,
                              float* plane_sums, int planes, const PoolGeometry& g) {
  const int64_t per_pooled = int64_t(g.pooled_h()) * g.pooled_w();
  for (int64_t plane = 0; plane < planes; ++plane) {
    std::vector<float> thread_sums(kBlock, 0.0f);
    for (int e = 0; e < g.h * g.w; ++e) {
      const float v = pool_relu_backward_at(
          pooled + plane * per_pooled, d_pooled + plane * per_pooled,
          argmax ? argmax + plane * per_pooled : nullptr, g, e / g.w, e % g.w);
      store(d_act, plane * g.h * g.w + e, v);
      thread_sums[size_t(e % kBlock)] += v;
    }
    if (plane_sums) plane_sums[plane] = block_sum(thread_sums);
  }
}

// Channels last: a block per (image band, 32 channels), lane = channel, 8
// rows of threads taking the band's pixels in turn, their sums added in order.
template <typename T>
void pool_relu_backward_last(const T* pooled, const T* d_pooled, const uint8_t* argmax, T* d_act,
                             float* partials, const PoolMaps& maps) {
  const int bands = bias_partial_rows(maps) / maps.n;
  const int64_t pixels = int64_t(maps.act.h) * maps.act.w;
  const int64_t per_band = (pixels + bands - 1) / bands;
  const MapLayout pl = maps.pooled();
  for (int n = 0; n < maps.n; ++n)
    for (int band = 0; band < bands; ++band)
      for (int c = 0; c < maps.act.c; ++c) {
        float rows[8] = {};
        const int64_t base = pl.at(n, c, 0, 0);
        const int64_t end = std::min(pixels, (band + 1) * per_band);
        for (int64_t e = band * per_band; e < end; ++e) {
          const int y = int(e / maps.act.w), x = int(e % maps.act.w);
          const float v = pool_relu_backward_at(pooled + base, d_pooled + base,
                                                argmax ? argmax + base : nullptr, maps.geometry(),
                                                y, x, pl.row_stride(), pl.col_stride());
          store(d_act, maps.act.at(n, c, y, x), v);
          rows[(e - band * per_band) % 8] += v;
        }
        float total = 0;
        for (float r : rows) total += r;
        if (partials) partials[(int64_t(n) * bands + band) * maps.act.c + c] = total;
      }
}

// launch_pool_relu_backward on the host.
template <typename T>
void pool_relu_backward(const T* pooled, const T* d_pooled, const uint8_t* argmax, T* d_act,
                        float* bias_partials, const PoolMaps& maps) {
  if (maps.act.channels_last)
    pool_relu_backward_last(pooled, d_pooled, argmax, d_act, bias_partials, maps);
  else
    pool_relu_backward_first(pooled, d_pooled, argmax, d_act, bias_partials, maps.n * maps.act.c,
                             maps.geometry());
}

// launch_relayout on the host: `n` maps into `to`'s layout from the other.
template <typename From, typename To>
void relayout(const From* in, To* out, int n, const MapLayout& to) {
  const MapLayout from{to.c, to.h, to.w, !to.channels_last};
  for (int64_t i = 0; i < int64_t(n) * to.c * to.h * to.w; ++i)
    store(out, i, relaid_at(in, from, to, i));
}

// column_sums_kernel: 8 stripes of rows per column, added in stripe order.
inline void column_sums(const float* in, int rows, int cols, float* out) {
  for (int j = 0; j < cols; ++j) {
    float stripes[8] = {};
    for (int i = 0; i < rows; ++i) stripes[i % 8] += in[int64_t(i) * cols + j];
    float total = 0;
    for (float s : stripes) total += s;
    out[j] = total;
  }
}

// The batch-norm kernels (bn_kernels.cu) in their thread structure: one block
// per plane with strided threads and block_sum; column_sums over the batch.
inline void bn_plane_moments(const Bf16* x, const float* centre, float* sums, int planes,
                             int channels, int64_t per_plane) {
  for (int64_t plane = 0; plane < planes; ++plane) {
    std::vector<float> threads(kBlock, 0.0f);
    for (int64_t e = 0; e < per_plane; ++e)
      threads[size_t(e % kBlock)] +=
          bn_moment_term(load(x, plane * per_plane + e), centre, int(plane % channels));
    sums[plane] = block_sum(threads);
  }
}

// Training: the statistics into mean / inv_std (and the running ones
// updated); inference: from the running ones. Then y = ReLU(BN(x)).
inline void bn_relu_forward(const Bf16* x, Bf16* y, const float* gamma, const float* beta,
                            float* mean, float* inv_std, float* running_mean, float* running_var,
                            bool training, int n, int channels, int64_t per_plane) {
  const int planes = n * channels;
  const int64_t count = int64_t(n) * per_plane;
  std::vector<float> partials(static_cast<size_t>(planes));
  if (training) {
    bn_plane_moments(x, nullptr, partials.data(), planes, channels, per_plane);
    column_sums(partials.data(), n, channels, mean);
    for (int c = 0; c < channels; ++c) mean[c] *= 1.0f / float(count);
    bn_plane_moments(x, mean, partials.data(), planes, channels, per_plane);
    column_sums(partials.data(), n, channels, inv_std);
    for (int c = 0; c < channels; ++c) inv_std[c] *= 1.0f / float(count);
  }
  for (int c = 0; c < channels; ++c) {
    if (training) {
      bn_update_running(mean[c], inv_std[c], count, kBatchNormMomentum, running_mean + c,
                        running_var + c);
      inv_std[c] = bn_inv_std(inv_std[c], kBatchNormEpsilon);
    } else {
      mean[c] = running_mean[c];
      inv_std[c] = bn_inv_std(running_var[c], kBatchNormEpsilon);
    }
  }
  for (int64_t i = 0; i < int64_t(planes) * per_plane; ++i) {
    const int c = int((i / per_plane) % channels);
    store(y, i, bn_relu_at(load(x, i), mean[c], inv_std[c], gamma[c], beta[c]));
  }
}

// dgamma, dbeta (overwritten) and dx from d (ReLU' applied) and x.
inline void bn_backward(const Bf16* d, const Bf16* x, Bf16* dx, const float* gamma,
                        const float* mean, const float* inv_std, float* dgamma, float* dbeta, int n,
                        int channels, int64_t per_plane) {
  const int planes = n * channels;
  std::vector<float> d_sums(static_cast<size_t>(planes)), dx_sums(static_cast<size_t>(planes));
  for (int64_t plane = 0; plane < planes; ++plane) {
    const int c = int(plane % channels);
    std::vector<float> sd(kBlock, 0.0f), sdx(kBlock, 0.0f);
    for (int64_t e = 0; e < per_plane; ++e) {
      const float g = load(d, plane * per_plane + e);
      sd[size_t(e % kBlock)] += g;
      sdx[size_t(e % kBlock)] +=
          g * bn_normalized(load(x, plane * per_plane + e), mean[c], inv_std[c]);
    }
    d_sums[size_t(plane)] = block_sum(sd);
    dx_sums[size_t(plane)] = block_sum(sdx);
  }
  column_sums(d_sums.data(), n, channels, dbeta);
  column_sums(dx_sums.data(), n, channels, dgamma);
  for (int64_t i = 0; i < int64_t(planes) * per_plane; ++i) {
    const int c = int((i / per_plane) % channels);
    const float x_hat = bn_normalized(load(x, i), mean[c], inv_std[c]);
    store(dx, i,
          bn_backward_dx_at(load(d, i), x_hat, gamma[c], inv_std[c], dgamma[c], dbeta[c],
                            int64_t(n) * per_plane));
  }
}

// bias_relu_kernel: in place over `n` bf16 maps.
inline void bias_relu(Bf16* y, const float* bias, int n, const MapLayout& layout) {
  for (int64_t i = 0; i < int64_t(n) * layout.c * layout.h * layout.w; ++i)
    store(y, i, pooled_value(load(y, i), bias, layout.channel_of(i)));
}

template <int C, int K, typename T>
void small_wgrad_block(const T* x, const T* dy, float* partials, const Dims4& xd, const Dims4& yd,
                       int pad, const SmallWgradPlan& plan, int n, int band) {
  constexpr int kTaps = C * K * K;
  const int y0 = band * plan.rows_per_band;
  const int rows = std::min(plan.rows_per_band, yd.h - y0);
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  std::vector<float> tile(static_cast<size_t>(C * tile_h * tile_w));
  for (int i = 0; i < C * tile_h * tile_w; ++i) {
    const int c = i / (tile_h * tile_w), rest = i % (tile_h * tile_w);
    tile[size_t(i)] = padded_input_at(x + (int64_t(n) * C + c) * xd.h * xd.w, xd.h, xd.w,
                                      y0 + rest / tile_w - pad, rest % tile_w - pad);
  }
  for (int o = 0; o < yd.c; ++o) {
    std::vector<std::array<float, kTaps>> lanes(32);
    for (auto& l : lanes) l.fill(0.0f);
    const T* g = dy + ((int64_t(n) * yd.c + o) * yd.h + y0) * yd.w;
    for (int q = 0; q < rows * yd.w; ++q)
      wgrad_accumulate<C, K>(tile.data(), tile_h, tile_w, q / yd.w, q % yd.w, load(g, q),
                             lanes[size_t(q % 32)].data());
    float* row = partials + ((int64_t(n) * plan.bands + band) * yd.c + o) * kTaps;
    for (int t = 0; t < kTaps; ++t) {
      std::array<float, 32> v{};
      for (int lane = 0; lane < 32; ++lane) v[size_t(lane)] = lanes[size_t(lane)][size_t(t)];
      row[t] = warp_sum_down(v);
    }
  }
}

// launch_small_wgrad on the host: dw = the weight gradient (OIHW).
template <typename T>
void small_wgrad(const T* x, const T* dy, float* dw, const Dims4& xd, const Dims4& yd, int kernel,
                 int pad, const SmallWgradPlan& plan) {
  std::vector<float> partials(plan.workspace_bytes / sizeof(float));
  for (int n = 0; n < yd.n; ++n)
    for (int band = 0; band < plan.bands; ++band)
      if (kernel == 3)
        small_wgrad_block<3, 3, T>(x, dy, partials.data(), xd, yd, pad, plan, n, band);
      else
        small_wgrad_block<3, 5, T>(x, dy, partials.data(), xd, yd, pad, plan, n, band);
  column_sums(partials.data(), yd.n * plan.bands, yd.c * plan.taps, dw);
}

}  // namespace histocnn::cuda::on_host
