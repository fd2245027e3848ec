// Our CUDA kernels (pool_kernels.cu, wgrad_kernels.cu) executed on the host:
// the same __host__ __device__ functions, called in the kernels' thread
// structure (block per plane or band, strided lanes, the shuffle-down tree,
// the column-sum stripes), so host tests check the arithmetic the GPU runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
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
    write_pooled(pooled, argmax, j, m, bias, o.c);
  }
}

// Channels first: a block per plane, its threads striding over the plane.
template <typename T>
void pool_relu_backward_first(const T* relu_out, const T* d_pooled, const uint8_t* argmax, T* d_act,
                              float* plane_sums, int planes, const PoolGeometry& g) {
  const int64_t per_pooled = int64_t(g.pooled_h()) * g.pooled_w();
  for (int64_t plane = 0; plane < planes; ++plane) {
    std::vector<float> thread_sums(kBlock, 0.0f);
    for (int e = 0; e < g.h * g.w; ++e) {
      const float v = pool_relu_backward_at(
          relu_out ? relu_out + plane * per_pooled : nullptr, d_pooled + plane * per_pooled,
          argmax ? argmax + plane * per_pooled : nullptr, g, e / g.w, e % g.w);
      if (d_act) store(d_act, plane * g.h * g.w + e, v);
      thread_sums[size_t(e % kBlock)] += v;
    }
    if (plane_sums) plane_sums[plane] = block_sum(thread_sums);
  }
}

// band_sums of block_sum.cuh for every block of its grid: per (image band,
// channel), the band's pixels taken by 8 rows of threads in turn, the rows'
// sums added in order. term(n, c, y, x) -> SumPair; row (n * bands + band)
// of a and b ([rows, C]; b may be null) gets the band's sums.
template <typename Term>
void band_sums(int images, const MapLayout& m, Term term, float* a, float* b) {
  const int bands = channel_sum_rows(images, m) / images;
  const int64_t pixels = int64_t(m.h) * m.w;
  const int64_t per_band = (pixels + bands - 1) / bands;
  for (int n = 0; n < images; ++n)
    for (int band = 0; band < bands; ++band)
      for (int c = 0; c < m.c; ++c) {
        SumPair rows[8];
        const int64_t end = std::min(pixels, (band + 1) * per_band);
        for (int64_t e = band * per_band; e < end; ++e) {
          const SumPair t = term(n, c, int(e / m.w), int(e % m.w));
          SumPair& row = rows[(e - band * per_band) % 8];
          row.a += t.a;
          row.b += t.b;
        }
        SumPair total;
        for (const SumPair& r : rows) total.a += r.a, total.b += r.b;
        const int64_t at = (int64_t(n) * bands + band) * m.c + c;
        if (a) a[at] = total.a;
        if (b) b[at] = total.b;
      }
}

// Channels last: band_sums over the map, each element's gradient written.
template <typename T>
void pool_relu_backward_last(const T* relu_out, const T* d_pooled, const uint8_t* argmax, T* d_act,
                             float* partials, const PoolMaps& maps) {
  const MapLayout pl = maps.pooled();
  band_sums(
      maps.n, maps.act,
      [&](int n, int c, int y, int x) {
        const int64_t base = pl.at(n, c, 0, 0);
        const float v = pool_relu_backward_at(relu_out ? relu_out + base : nullptr, d_pooled + base,
                                              argmax ? argmax + base : nullptr, maps.geometry(), y,
                                              x, pl.row_stride(), pl.col_stride());
        if (d_act) store(d_act, maps.act.at(n, c, y, x), v);
        return SumPair{v, 0};
      },
      partials, nullptr);
}

// launch_pool_relu_backward on the host (relu_out read only where p == 1,
// so it may be a plain nullptr: T comes from d_pooled).
template <typename T>
void pool_relu_backward(const std::type_identity_t<T>* relu_out, const T* d_pooled,
                        const uint8_t* argmax, T* d_act, float* bias_partials,
                        const PoolMaps& maps) {
  if (maps.act.channels_last)
    pool_relu_backward_last(relu_out, d_pooled, argmax, d_act, bias_partials, maps);
  else
    pool_relu_backward_first(relu_out, d_pooled, argmax, d_act, bias_partials, maps.n * maps.act.c,
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

// The batch-norm kernels (bn_kernels.cu) in their thread structure: channels
// first one block per plane with strided threads and block_sum, channels
// last band_sums; column_sums over the rows. T: float or Bf16.
template <typename T>
void bn_channel_moments(const T* x, const float* centre, float* sums, int n, const MapLayout& l) {
  if (l.channels_last) {
    band_sums(
        n, l,
        [&](int i, int c, int y, int xx) {
          return SumPair{bn_moment_term(load(x, l.at(i, c, y, xx)), centre, c), 0};
        },
        sums, nullptr);
    return;
  }
  const int64_t per_plane = int64_t(l.h) * l.w;
  for (int64_t plane = 0; plane < int64_t(n) * l.c; ++plane) {
    std::vector<float> threads(kBlock, 0.0f);
    for (int64_t e = 0; e < per_plane; ++e)
      threads[size_t(e % kBlock)] +=
          bn_moment_term(load(x, plane * per_plane + e), centre, int(plane % l.c));
    sums[plane] = block_sum(threads);
  }
}

// Training: the statistics into mean / inv_std (and the running ones
// updated); inference: from the running ones. Then y = ReLU(BN(x)).
template <typename T>
void bn_relu_forward(const T* x, T* y, const float* gamma, const float* beta, float* mean,
                     float* inv_std, float* running_mean, float* running_var, bool training, int n,
                     const MapLayout& l) {
  const int rows = channel_sum_rows(n, l);
  const int64_t count = int64_t(n) * l.h * l.w;
  std::vector<float> partials(size_t(rows) * size_t(l.c));
  if (training) {
    bn_channel_moments(x, nullptr, partials.data(), n, l);
    column_sums(partials.data(), rows, l.c, mean);
    for (int c = 0; c < l.c; ++c) mean[c] *= 1.0f / float(count);
    bn_channel_moments(x, mean, partials.data(), n, l);
    column_sums(partials.data(), rows, l.c, inv_std);
    for (int c = 0; c < l.c; ++c) inv_std[c] *= 1.0f / float(count);
  }
  for (int c = 0; c < l.c; ++c) {
    if (training) {
      bn_update_running(mean[c], inv_std[c], count, kBatchNormMomentum, running_mean + c,
                        running_var + c);
      inv_std[c] = bn_inv_std(inv_std[c], kBatchNormEpsilon);
    } else {
      mean[c] = running_mean[c];
      inv_std[c] = bn_inv_std(running_var[c], kBatchNormEpsilon);
    }
  }
  for (int64_t i = 0; i < count * l.c; ++i) {
    const int c = l.channel_of(i);
    store(y, i, bn_relu_at(load(x, i), mean[c], inv_std[c], gamma[c], beta[c]));
  }
}

// dgamma, dbeta (overwritten) and dx from d (ReLU' applied) and x.
template <typename T>
void bn_backward(const T* d, const T* x, T* dx, const float* gamma, const float* mean,
                 const float* inv_std, float* dgamma, float* dbeta, int n, const MapLayout& l) {
  const int rows = channel_sum_rows(n, l);
  const int64_t count = int64_t(n) * l.h * l.w;
  std::vector<float> d_sums(size_t(rows) * size_t(l.c)), dx_sums(d_sums.size());
  auto terms = [&](int64_t i, int c) {
    const float g = load(d, i);
    return SumPair{g, g * bn_normalized(load(x, i), mean[c], inv_std[c])};
  };
  if (l.channels_last) {
    band_sums(
        n, l, [&](int i, int c, int y, int xx) { return terms(l.at(i, c, y, xx), c); },
        d_sums.data(), dx_sums.data());
  } else {
    const int64_t per_plane = int64_t(l.h) * l.w;
    for (int64_t plane = 0; plane < int64_t(n) * l.c; ++plane) {
      std::vector<float> sd(kBlock, 0.0f), sdx(kBlock, 0.0f);
      for (int64_t e = 0; e < per_plane; ++e) {
        const SumPair t = terms(plane * per_plane + e, int(plane % l.c));
        sd[size_t(e % kBlock)] += t.a;
        sdx[size_t(e % kBlock)] += t.b;
      }
      d_sums[size_t(plane)] = block_sum(sd);
      dx_sums[size_t(plane)] = block_sum(sdx);
    }
  }
  column_sums(d_sums.data(), rows, l.c, dbeta);
  column_sums(dx_sums.data(), rows, l.c, dgamma);
  for (int64_t i = 0; i < count * l.c; ++i) {
    const int c = l.channel_of(i);
    const float x_hat = bn_normalized(load(x, i), mean[c], inv_std[c]);
    store(dx, i,
          bn_backward_dx_at(load(d, i), x_hat, gamma[c], inv_std[c], dgamma[c], dbeta[c], count));
  }
}

// bias_relu_kernel: in place over `n` bf16 maps.
inline void bias_relu(Bf16* y, const float* bias, int n, const MapLayout& layout) {
  for (int64_t i = 0; i < int64_t(n) * layout.c * layout.h * layout.w; ++i)
    store(y, i, pooled_value(load(y, i), bias, layout.channel_of(i)));
}

template <int C, int K, int OB, typename T>
void small_wgrad_block(const T* x, const T* dy, float* partials, const Dims4& xd, const Dims4& yd,
                       int pad, const SmallWgradPlan& plan, int n, int band) {
  constexpr int kTaps = C * K * K;
  const int y0 = band * plan.rows_per_band;
  const int rows = std::min(plan.rows_per_band, yd.h - y0);
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  std::vector<float> tile(static_cast<size_t>(C * tile_h * tile_w));
  const MapLayout xl{C, xd.h, xd.w, plan.channels_last}, yl{yd.c, yd.h, yd.w, plan.channels_last};
  for (int i = 0; i < C * tile_h * tile_w; ++i)
    stage_tile_element(x, xl, n, y0, pad, tile_h, tile_w, i, tile.data());
  // A warp's pass: output channels o0 .. o0 + OB - 1 (those past the last
  // read the last one's values and are not written), lane q % 32 taking
  // position q.
  for (int o0 = 0; o0 < yd.c; o0 += OB) {
    std::vector<std::array<float, OB * kTaps>> lanes(32);
    for (auto& l : lanes) l.fill(0.0f);
    for (int q = 0; q < rows * yd.w; ++q) {
      float values[OB];
      for (int j = 0; j < OB; ++j)
        values[j] = load(dy + yl.at(n, std::min(o0 + j, yd.c - 1), y0, 0), q * yl.col_stride());
      float* acc = lanes[size_t(q % 32)].data();
      if constexpr (OB == 1)
        wgrad_accumulate<C, K>(tile.data(), tile_h, tile_w, q / yd.w, q % yd.w, values[0], acc);
      else
        wgrad_accumulate_channels<C, K, OB>(tile.data(), tile_h, tile_w, q / yd.w, q % yd.w, values,
                                            acc);
    }
    for (int j = 0; j < OB && o0 + j < yd.c; ++j) {
      float* row = partials + ((int64_t(n) * plan.bands + band) * yd.c + o0 + j) * kTaps;
      for (int t = 0; t < kTaps; ++t) {
        std::array<float, 32> v{};
        for (int lane = 0; lane < 32; ++lane)
          v[size_t(lane)] = lanes[size_t(lane)][size_t(j * kTaps + t)];
        row[t] = warp_sum_down(v);
      }
    }
  }
}

// small_wgrad_pooled_kernel's block (n, band) on the host: lane q % 32 takes
// pooled position q of the band, as on the device; the taps' sums, then the
// bias's.
template <int C, int K, typename T>
void small_wgrad_pooled_block(const T* x, const T* d_pooled, const uint8_t* argmax, float* partials,
                              float* bias_partials, const Dims4& xd, const Dims4& yd,
                              const MapLayout& pl, int pad, const SmallWgradPlan& plan, int n,
                              int band) {
  constexpr int kTaps = C * K * K;
  const int y0 = band * plan.rows_per_band;
  const int rows = std::min(plan.rows_per_band, pl.h * plan.pool - y0);
  const int tile_h = rows + K - 1, tile_w = xd.w + 2 * pad;
  std::vector<float> tile(static_cast<size_t>(C * tile_h * tile_w));
  const MapLayout xl{C, xd.h, xd.w, plan.channels_last};
  for (int i = 0; i < C * tile_h * tile_w; ++i)
    stage_tile_element(x, xl, n, y0, pad, tile_h, tile_w, i, tile.data());
  const int positions = rows / plan.pool * pl.w;
  for (int o = 0; o < yd.c; ++o) {
    std::vector<std::array<float, kTaps + 1>> lanes(32);
    for (auto& l : lanes) l.fill(0.0f);
    const int64_t first = pl.at(n, o, y0 / plan.pool, 0);
    for (int q = 0; q < positions; ++q) {
      const int py = q / pl.w, px = q % pl.w;
      const int64_t j = first + py * pl.row_stride() + px * pl.col_stride();
      const PooledTerm term = pooled_wgrad_term(d_pooled, argmax, j, plan.pool, py, px);
      float* acc = lanes[size_t(q % 32)].data();
      wgrad_accumulate<C, K>(tile.data(), tile_h, tile_w, term.ty, term.tx, term.g, acc);
      acc[kTaps] += term.g;
    }
    const int64_t r = int64_t(n) * plan.bands + band;
    float* row = partials + (r * yd.c + o) * kTaps;
    for (int t = 0; t <= kTaps; ++t) {
      std::array<float, 32> v{};
      for (int lane = 0; lane < 32; ++lane) v[size_t(lane)] = lanes[size_t(lane)][size_t(t)];
      (t < kTaps ? row[t] : bias_partials[r * yd.c + o]) = warp_sum_down(v);
    }
  }
}

// launch_small_wgrad_pooled on the host: dw and db.
template <typename T>
void small_wgrad_pooled(const T* x, const T* d_pooled, const uint8_t* argmax, float* dw, float* db,
                        const Dims4& xd, const Dims4& yd, bool pooled_channels_last, int kernel,
                        int pad, const SmallWgradPlan& plan) {
  const MapLayout pl =
      PoolMaps{yd.n, yd.layout(plan.channels_last), pooled_channels_last, plan.pool}.pooled();
  std::vector<float> partials(plan.workspace_bytes / sizeof(float));
  float* bias_partials = partials.data() + plan.bias_partials_offset();
  for (int n = 0; n < yd.n; ++n)
    for (int band = 0; band < plan.bands; ++band)
      if (kernel == 3)
        small_wgrad_pooled_block<3, 3, T>(x, d_pooled, argmax, partials.data(), bias_partials, xd,
                                          yd, pl, pad, plan, n, band);
      else
        small_wgrad_pooled_block<3, 5, T>(x, d_pooled, argmax, partials.data(), bias_partials, xd,
                                          yd, pl, pad, plan, n, band);
  column_sums(partials.data(), yd.n * plan.bands, yd.c * plan.taps, dw);
  column_sums(bias_partials, yd.n * plan.bands, yd.c, db);
}

// launch_small_wgrad on the host: dw = the weight gradient (OIHW).
template <typename T>
void small_wgrad(const T* x, const T* dy, float* dw, const Dims4& xd, const Dims4& yd, int kernel,
                 int pad, const SmallWgradPlan& plan) {
  std::vector<float> partials(plan.workspace_bytes / sizeof(float));
  for (int n = 0; n < yd.n; ++n)
    for (int band = 0; band < plan.bands; ++band)
      if (kernel == 3 && plan.out_block == 4)
        small_wgrad_block<3, 3, 4, T>(x, dy, partials.data(), xd, yd, pad, plan, n, band);
      else if (kernel == 3 && plan.out_block == 2)
        small_wgrad_block<3, 3, 2, T>(x, dy, partials.data(), xd, yd, pad, plan, n, band);
      else if (kernel == 3)
        small_wgrad_block<3, 3, 1, T>(x, dy, partials.data(), xd, yd, pad, plan, n, band);
      else
        small_wgrad_block<3, 5, 1, T>(x, dy, partials.data(), xd, yd, pad, plan, n, band);
  column_sums(partials.data(), yd.n * plan.bands, yd.c * plan.taps, dw);
}

}  // namespace histocnn::cuda::on_host
