#include "nn/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/rng.h"

namespace histocnn::reference {

void conv2d_forward(const float* x, const float* w, const float* b, float* y, int n, int c, int h,
                    int wd, int o, int k, int pad) {
  const int oh = h + 2 * pad - k + 1, ow = wd + 2 * pad - k + 1;
  for (int in = 0; in < n; ++in)
    for (int oc = 0; oc < o; ++oc)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double acc = b[oc];
          for (int ic = 0; ic < c; ++ic)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const int iy = oy + ky - pad, ix = ox + kx - pad;
                if (iy < 0 || ix < 0 || iy >= h || ix >= wd) continue;
                acc += double(x[((size_t(in) * c + ic) * h + iy) * wd + ix]) *
                       w[((size_t(oc) * c + ic) * k + ky) * k + kx];
              }
          y[((size_t(in) * o + oc) * oh + oy) * ow + ox] = float(acc);
        }
}

void conv2d_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                     float* db, int n, int c, int h, int wd, int o, int k, int pad) {
  const int oh = h + 2 * pad - k + 1, ow = wd + 2 * pad - k + 1;
  std::vector<double> gw(size_t(o) * c * k * k, 0.0), gb(o, 0.0), gx;
  if (dx) gx.assign(size_t(n) * c * h * wd, 0.0);
  for (int in = 0; in < n; ++in)
    for (int oc = 0; oc < o; ++oc)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          const double g = dy[((size_t(in) * o + oc) * oh + oy) * ow + ox];
          gb[oc] += g;
          for (int ic = 0; ic < c; ++ic)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const int iy = oy + ky - pad, ix = ox + kx - pad;
                if (iy < 0 || ix < 0 || iy >= h || ix >= wd) continue;
                const size_t xi = ((size_t(in) * c + ic) * h + iy) * wd + ix;
                const size_t wi = ((size_t(oc) * c + ic) * k + ky) * k + kx;
                gw[wi] += g * x[xi];
                if (dx) gx[xi] += g * w[wi];
              }
        }
  for (size_t i = 0; i < gw.size(); ++i) dw[i] = float(gw[i]);
  for (int i = 0; i < o; ++i) db[i] = float(gb[i]);
  if (dx)
    for (size_t i = 0; i < gx.size(); ++i) dx[i] = float(gx[i]);
}

void maxpool_forward(const float* x, float* y, int n, int c, int h, int w, int p) {
  const int oh = h / p, ow = w / p;
  for (int plane = 0; plane < n * c; ++plane)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        float best = -INFINITY;
        for (int ky = 0; ky < p; ++ky)
          for (int kx = 0; kx < p; ++kx)
            best = std::max(best, x[(size_t(plane) * h + oy * p + ky) * w + ox * p + kx]);
        y[(size_t(plane) * oh + oy) * ow + ox] = best;
      }
}

void maxpool_backward(const float* x, const float* dy, float* dx, int n, int c, int h, int w,
                      int p) {
  const int oh = h / p, ow = w / p;
  std::fill(dx, dx + size_t(n) * c * h * w, 0.0f);
  for (int plane = 0; plane < n * c; ++plane)
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) {
        size_t arg = 0;
        float best = -INFINITY;
        for (int ky = 0; ky < p; ++ky)
          for (int kx = 0; kx < p; ++kx) {
            const size_t i = (size_t(plane) * h + oy * p + ky) * w + ox * p + kx;
            if (x[i] > best) best = x[i], arg = i;
          }
        dx[arg] += dy[(size_t(plane) * oh + oy) * ow + ox];
      }
}

void relu_forward(const float* x, float* y, int64_t count) {
  for (int64_t i = 0; i < count; ++i) y[i] = x[i] > 0 ? x[i] : 0.0f;
}

void relu_backward(const float* x, const float* dy, float* dx, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dx[i] = x[i] > 0 ? dy[i] : 0.0f;
}

void dense_forward(const float* x, const float* w, const float* b, float* y, int n, int in,
                   int out) {
  for (int r = 0; r < n; ++r)
    for (int o = 0; o < out; ++o) {
      double acc = b[o];
      for (int i = 0; i < in; ++i) acc += double(x[size_t(r) * in + i]) * w[size_t(o) * in + i];
      y[size_t(r) * out + o] = float(acc);
    }
}

void dense_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                    float* db, int n, int in, int out) {
  for (int o = 0; o < out; ++o) {
    double gb = 0;
    for (int r = 0; r < n; ++r) gb += dy[size_t(r) * out + o];
    db[o] = float(gb);
    for (int i = 0; i < in; ++i) {
      double g = 0;
      for (int r = 0; r < n; ++r) g += double(dy[size_t(r) * out + o]) * x[size_t(r) * in + i];
      dw[size_t(o) * in + i] = float(g);
    }
  }
  if (dx)
    for (int r = 0; r < n; ++r)
      for (int i = 0; i < in; ++i) {
        double g = 0;
        for (int o = 0; o < out; ++o) g += double(dy[size_t(r) * out + o]) * w[size_t(o) * in + i];
        dx[size_t(r) * in + i] = float(g);
      }
}

double softmax_cross_entropy(const float* logits, const int32_t* labels, int n, int count,
                             float* dlogits, float* probs) {
  double loss = 0;
  for (int r = 0; r < n; ++r) {
    const double a = logits[2 * r], b = logits[2 * r + 1], m = std::max(a, b);
    const double lse = m + std::log(std::exp(a - m) + std::exp(b - m));
    const double pa = std::exp(a - lse), pb = std::exp(b - lse);
    if (probs) probs[2 * r] = float(pa), probs[2 * r + 1] = float(pb);
    if (r >= count) {
      if (dlogits) dlogits[2 * r] = dlogits[2 * r + 1] = 0;
      continue;
    }
    const int y = labels[r];
    loss += lse - (y == 0 ? a : b);
    if (dlogits) {
      dlogits[2 * r] = float((pa - (y == 0)) / count);
      dlogits[2 * r + 1] = float((pb - (y == 1)) / count);
    }
  }
  return loss / count;
}

NetworkResult network_forward_backward(const NetworkShape& s, const Parameters& params,
                                       const float* images, const int32_t* labels, int count,
                                       bool training, uint64_t dropout_seed, int64_t step) {
  const int n = s.batch;
  NetworkResult result;
  result.grads = Parameters::zeros(s);
  // Forward, keeping every intermediate.
  std::vector<std::vector<float>> conv_in(s.convs.size()), conv_pre(s.convs.size()),
      conv_act(s.convs.size()), pooled(s.convs.size());
  std::vector<float> x(images, images + size_t(n) * s.channels * s.height * s.width);
  for (size_t i = 0; i < s.convs.size(); ++i) {
    const auto& c = s.convs[i];
    conv_in[i] = x;
    const auto& w = params.info("conv" + std::to_string(i + 1) + ".weight");
    const auto& b = params.info("conv" + std::to_string(i + 1) + ".bias");
    const size_t conv_size = size_t(n) * c.out_c * c.conv_h * c.conv_w;
    conv_pre[i].resize(conv_size);
    conv2d_forward(x.data(), params.data(w), params.data(b), conv_pre[i].data(), n, c.in_c, c.in_h,
                   c.in_w, c.out_c, c.kernel, c.pad);
    conv_act[i].resize(conv_size);
    relu_forward(conv_pre[i].data(), conv_act[i].data(), int64_t(conv_size));
    pooled[i].resize(size_t(n) * c.out_c * c.out_h * c.out_w);
    maxpool_forward(conv_act[i].data(), pooled[i].data(), n, c.out_c, c.conv_h, c.conv_w, c.pool);
    x = pooled[i];
  }
  std::vector<std::vector<float>> dense_in(s.denses.size()), dense_pre(s.denses.size()),
      masks(s.denses.size());
  for (size_t i = 0; i < s.denses.size(); ++i) {
    const auto& d = s.denses[i];
    dense_in[i] = x;
    const auto& w = params.info("fc" + std::to_string(i + 1) + ".weight");
    const auto& b = params.info("fc" + std::to_string(i + 1) + ".bias");
    dense_pre[i].resize(size_t(n) * d.out);
    dense_forward(x.data(), params.data(w), params.data(b), dense_pre[i].data(), n, d.in, d.out);
    x = dense_pre[i];
    if (d.relu) relu_forward(x.data(), x.data(), int64_t(x.size()));
    masks[i].assign(x.size(), 1.0f);
    if (training && d.dropout_after > 0) {
      const float scale = 1.0f / (1.0f - d.dropout_after);
      for (size_t j = 0; j < x.size(); ++j) {
        const uint64_t stream = uint64_t(step + 1) * 64 + i;
        masks[i][j] = counter_uniform(dropout_seed, stream, j) >= d.dropout_after ? scale : 0.0f;
        x[j] *= masks[i][j];
      }
    }
  }
  std::vector<float> grad(x.size());
  result.probs.resize(x.size());
  result.loss = softmax_cross_entropy(x.data(), labels, n, count, grad.data(), result.probs.data());
  // Backward.
  for (size_t i = s.denses.size(); i-- > 0;) {
    const auto& d = s.denses[i];
    for (size_t j = 0; j < grad.size(); ++j) grad[j] *= masks[i][j];
    if (d.relu) relu_backward(dense_pre[i].data(), grad.data(), grad.data(), int64_t(grad.size()));
    const auto& w = params.info("fc" + std::to_string(i + 1) + ".weight");
    const auto& b = params.info("fc" + std::to_string(i + 1) + ".bias");
    std::vector<float> dx(dense_in[i].size());
    dense_backward(dense_in[i].data(), params.data(w), grad.data(), dx.data(), result.grads.data(w),
                   result.grads.data(b), n, d.in, d.out);
    grad = std::move(dx);
  }
  for (size_t i = s.convs.size(); i-- > 0;) {
    const auto& c = s.convs[i];
    std::vector<float> d_act(conv_act[i].size());
    maxpool_backward(conv_act[i].data(), grad.data(), d_act.data(), n, c.out_c, c.conv_h, c.conv_w,
                     c.pool);
    relu_backward(conv_pre[i].data(), d_act.data(), d_act.data(), int64_t(d_act.size()));
    const auto& w = params.info("conv" + std::to_string(i + 1) + ".weight");
    const auto& b = params.info("conv" + std::to_string(i + 1) + ".bias");
    std::vector<float> dx(i > 0 ? conv_in[i].size() : 0);
    conv2d_backward(conv_in[i].data(), params.data(w), d_act.data(), i > 0 ? dx.data() : nullptr,
                    result.grads.data(w), result.grads.data(b), n, c.in_c, c.in_h, c.in_w, c.out_c,
                    c.kernel, c.pad);
    grad = std::move(dx);
  }
  return result;
}

}  // namespace histocnn::reference
