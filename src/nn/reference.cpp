#include "nn/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"

namespace histocnn::reference {

void conv2d_forward(const float* x, const float* w, const float* b, float* y, int n, int c, int h,
                    int wd, int o, int k, int pad) {
  const int oh = h + 2 * pad - k + 1, ow = wd + 2 * pad - k + 1;
  for (int in = 0; in < n; ++in)
    for (int oc = 0; oc < o; ++oc)
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          double acc = b ? b[oc] : 0.0;
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
  if (db)
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

void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y,
                             float* mean, float* var, int n, int c, int hw) {
  const double count = double(n) * hw;
  for (int ch = 0; ch < c; ++ch) {
    double sum = 0;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) sum += x[(size_t(i) * c + ch) * hw + p];
    const double mu = sum / count;
    double sq = 0;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) {
        const double d = x[(size_t(i) * c + ch) * hw + p] - mu;
        sq += d * d;
      }
    const double v = sq / count;  // biased: what normalises the batch
    const double inv = 1.0 / std::sqrt(v + kBatchNormEpsilon);
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) {
        const size_t at = (size_t(i) * c + ch) * hw + p;
        y[at] = float(gamma[ch] * (x[at] - mu) * inv + beta[ch]);
      }
    mean[ch] = float(mu);
    var[ch] = float(v);
  }
}

void batchnorm_forward_infer(const float* x, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, float* y, int n,
                             int c, int hw) {
  for (int ch = 0; ch < c; ++ch) {
    const double inv = 1.0 / std::sqrt(double(running_var[ch]) + kBatchNormEpsilon);
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) {
        const size_t at = (size_t(i) * c + ch) * hw + p;
        y[at] = float(gamma[ch] * (x[at] - running_mean[ch]) * inv + beta[ch]);
      }
  }
}

void batchnorm_backward(const float* x, const float* gamma, const float* mean, const float* var,
                        const float* dy, float* dx, float* dgamma, float* dbeta, int n, int c,
                        int hw) {
  const double count = double(n) * hw;
  for (int ch = 0; ch < c; ++ch) {
    const double inv = 1.0 / std::sqrt(double(var[ch]) + kBatchNormEpsilon);
    double sum_dy = 0, sum_dy_xhat = 0;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) {
        const size_t at = (size_t(i) * c + ch) * hw + p;
        const double xhat = (x[at] - mean[ch]) * inv;
        sum_dy += dy[at];
        sum_dy_xhat += dy[at] * xhat;
      }
    dgamma[ch] = float(sum_dy_xhat);
    dbeta[ch] = float(sum_dy);
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < hw; ++p) {
        const size_t at = (size_t(i) * c + ch) * hw + p;
        const double xhat = (x[at] - mean[ch]) * inv;
        dx[at] = float(gamma[ch] * inv * (dy[at] - sum_dy / count - xhat * sum_dy_xhat / count));
      }
  }
}

void global_avgpool_forward(const float* x, float* y, int n, int c, int hw) {
  for (size_t r = 0; r < size_t(n) * c; ++r) {
    double sum = 0;
    for (int p = 0; p < hw; ++p) sum += x[r * hw + p];
    y[r] = float(sum / hw);
  }
}

void global_avgpool_backward(const float* dy, float* dx, int n, int c, int hw) {
  for (size_t r = 0; r < size_t(n) * c; ++r)
    for (int p = 0; p < hw; ++p) dx[r * hw + p] = dy[r] / float(hw);
}

namespace {

// The smoothed target of row label y at class k (elementwise::smoothed_target
// written out independently).
double target(elementwise::LabelSmoothing s, int k, int y, int classes) {
  const double hot = k == y ? 1.0 : 0.0;
  if (s.epsilon == 0) return hot;
  double spread = 1.0 / classes;
  if (s.neighbours) {
    const int near = (y > 0) + (y + 1 < classes);
    spread = std::abs(k - y) == 1 ? 1.0 / near : 0.0;
  }
  return (1 - double(s.epsilon)) * hot + double(s.epsilon) * spread;
}

}  // namespace

double softmax_cross_entropy(const float* logits, const int32_t* labels, int n, int classes,
                             int count, float* dlogits, float* probs,
                             elementwise::LabelSmoothing smoothing) {
  double loss = 0;
  for (int r = 0; r < n; ++r) {
    const float* z = logits + size_t(r) * size_t(classes);
    const double m = *std::max_element(z, z + classes);
    double sum = 0;
    for (int k = 0; k < classes; ++k) sum += std::exp(z[k] - m);
    const double lse = m + std::log(sum);
    for (int k = 0; k < classes; ++k) {
      const double p = std::exp(z[k] - lse);
      const size_t at = size_t(r) * size_t(classes) + size_t(k);
      if (probs) probs[at] = float(p);
      if (dlogits)
        dlogits[at] =
            r < count ? float((p - target(smoothing, k, labels[r], classes)) / count) : 0.0f;
      if (r < count) loss += target(smoothing, k, labels[r], classes) * (lse - z[k]);
    }
  }
  return loss / count;
}

namespace {

// One reference step's fixed inputs, and every intermediate it keeps for
// the backward pass (per conv block i and dense layer i).
struct ReferenceStep {
  const NetworkShape& s;
  const Parameters& params;
  bool training;
  Buffers* buffers;
  int n;
  std::vector<std::vector<float>> conv_in, conv_raw, conv_pre, conv_act, bn_mean, bn_var;
  std::vector<std::vector<float>> dense_in, dense_pre, masks;

  ReferenceStep(const NetworkShape& shape, const Parameters& p, bool train, Buffers* b)
      : s(shape), params(p), training(train), buffers(b), n(shape.batch) {
    const size_t convs = s.convs.size(), denses = s.denses.size();
    for (auto* v : {&conv_in, &conv_raw, &conv_pre, &conv_act, &bn_mean, &bn_var}) v->resize(convs);
    for (auto* v : {&dense_in, &dense_pre, &masks}) v->resize(denses);
  }

  const float* data(const std::string& name) const { return params.data(params.info(name)); }

  // Batch norm of block i's convolution output (conv_raw) into conv_pre: the
  // batch's statistics when training (and the running ones updated), else the
  // running ones.
  void batch_norm_forward(size_t i) {
    const auto& c = s.convs[i];
    const std::string name = std::to_string(i + 1);
    conv_raw[i] = conv_pre[i];
    const float* gamma = data("bn" + name + ".weight");
    const float* beta = data("bn" + name + ".bias");
    const int hw = c.conv_h * c.conv_w;
    if (!training)
      return batchnorm_forward_infer(conv_raw[i].data(), gamma, beta, buffers->running_mean(int(i)),
                                     buffers->running_var(int(i)), conv_pre[i].data(), n, c.out_c,
                                     hw);
    bn_mean[i].resize(size_t(c.out_c));
    bn_var[i].resize(size_t(c.out_c));
    batchnorm_forward_train(conv_raw[i].data(), gamma, beta, conv_pre[i].data(), bn_mean[i].data(),
                            bn_var[i].data(), n, c.out_c, hw);
    buffers->update(int(i), bn_mean[i].data(), bn_var[i].data(), c.out_c, int64_t(n) * hw);
  }

  // Conv (+ batch norm) + ReLU + max-pool; returns the pooled map.
  std::vector<float> conv_forward(size_t i, const std::vector<float>& x) {
    const auto& c = s.convs[i];
    conv_in[i] = x;
    const std::string name = std::to_string(i + 1);
    const float* bias = c.batch_norm ? nullptr : data("conv" + name + ".bias");
    const size_t conv_size = size_t(n) * c.out_c * c.conv_h * c.conv_w;
    conv_pre[i].resize(conv_size);
    conv2d_forward(x.data(), data("conv" + name + ".weight"), bias, conv_pre[i].data(), n, c.in_c,
                   c.in_h, c.in_w, c.out_c, c.kernel, c.pad);
    if (c.batch_norm) batch_norm_forward(i);  // conv_raw keeps the convolution
    conv_act[i].resize(conv_size);
    relu_forward(conv_pre[i].data(), conv_act[i].data(), int64_t(conv_size));
    std::vector<float> pooled(size_t(n) * c.out_c * c.out_h * c.out_w);
    maxpool_forward(conv_act[i].data(), pooled.data(), n, c.out_c, c.conv_h, c.conv_w, c.pool);
    return pooled;
  }

  // Dense layer i (+ ReLU, + inverted dropout when training).
  std::vector<float> dense_forward_at(size_t i, std::vector<float> x, uint64_t dropout_seed,
                                      int64_t step) {
    const auto& d = s.denses[i];
    dense_in[i] = x;
    const std::string name = "fc" + std::to_string(i + 1);
    dense_pre[i].resize(size_t(n) * d.out);
    dense_forward(x.data(), data(name + ".weight"), data(name + ".bias"), dense_pre[i].data(), n,
                  d.in, d.out);
    x = dense_pre[i];
    if (d.relu) relu_forward(x.data(), x.data(), int64_t(x.size()));
    masks[i].assign(x.size(), 1.0f);
    if (!training || d.dropout_after <= 0) return x;
    const float scale = 1.0f / (1.0f - d.dropout_after);
    for (size_t j = 0; j < x.size(); ++j) {
      const uint64_t stream = uint64_t(step + 1) * 64 + i;
      masks[i][j] = counter_uniform(dropout_seed, stream, j) >= d.dropout_after ? scale : 0.0f;
      x[j] *= masks[i][j];
    }
    return x;
  }

  // From the gradient of dense layer i's output to that of its input.
  std::vector<float> dense_backward_at(size_t i, std::vector<float> grad, Parameters& grads) {
    const auto& d = s.denses[i];
    for (size_t j = 0; j < grad.size(); ++j) grad[j] *= masks[i][j];
    if (d.relu) relu_backward(dense_pre[i].data(), grad.data(), grad.data(), int64_t(grad.size()));
    const auto& w = params.info("fc" + std::to_string(i + 1) + ".weight");
    const auto& b = params.info("fc" + std::to_string(i + 1) + ".bias");
    std::vector<float> dx(dense_in[i].size());
    dense_backward(dense_in[i].data(), params.data(w), grad.data(), dx.data(), grads.data(w),
                   grads.data(b), n, d.in, d.out);
    return dx;
  }

  // Batch norm backward of block i: the gradient of its convolution output,
  // and of gamma and beta. In inference mode it is an affine map per channel
  // with the running statistics.
  std::vector<float> batch_norm_backward(size_t i, const std::vector<float>& d_act,
                                         Parameters& grads) {
    const auto& c = s.convs[i];
    const std::string name = std::to_string(i + 1);
    const auto& gamma = params.info("bn" + name + ".weight");
    const auto& beta = params.info("bn" + name + ".bias");
    const int hw = c.conv_h * c.conv_w;
    std::vector<float> d_raw(d_act.size());
    if (training) {
      batchnorm_backward(conv_raw[i].data(), params.data(gamma), bn_mean[i].data(),
                         bn_var[i].data(), d_act.data(), d_raw.data(), grads.data(gamma),
                         grads.data(beta), n, c.out_c, hw);
      return d_raw;
    }
    const float* mean = buffers->running_mean(int(i));
    const float* var = buffers->running_var(int(i));
    for (int ch = 0; ch < c.out_c; ++ch) {
      const double inv = 1.0 / std::sqrt(double(var[ch]) + kBatchNormEpsilon);
      double dg = 0, db = 0;
      for (int r = 0; r < n; ++r)
        for (int p = 0; p < hw; ++p) {
          const size_t at = (size_t(r) * c.out_c + ch) * hw + p;
          dg += d_act[at] * (conv_raw[i][at] - mean[ch]) * inv;
          db += d_act[at];
          d_raw[at] = float(d_act[at] * params.data(gamma)[ch] * inv);
        }
      grads.data(gamma)[ch] = float(dg);
      grads.data(beta)[ch] = float(db);
    }
    return d_raw;
  }

  // From the gradient of block i's pooled map to that of its input (empty
  // for the first block: nobody wants d(image)).
  std::vector<float> conv_backward(size_t i, const std::vector<float>& grad, Parameters& grads) {
    const auto& c = s.convs[i];
    const std::string name = std::to_string(i + 1);
    std::vector<float> d_act(conv_act[i].size());
    maxpool_backward(conv_act[i].data(), grad.data(), d_act.data(), n, c.out_c, c.conv_h, c.conv_w,
                     c.pool);
    relu_backward(conv_pre[i].data(), d_act.data(), d_act.data(), int64_t(d_act.size()));
    const auto& w = params.info("conv" + name + ".weight");
    float* d_bias = nullptr;
    if (c.batch_norm)
      d_act = batch_norm_backward(i, d_act, grads);
    else
      d_bias = grads.data(params.info("conv" + name + ".bias"));
    std::vector<float> dx(i > 0 ? conv_in[i].size() : 0);
    conv2d_backward(conv_in[i].data(), params.data(w), d_act.data(), i > 0 ? dx.data() : nullptr,
                    grads.data(w), d_bias, n, c.in_c, c.in_h, c.in_w, c.out_c, c.kernel, c.pad);
    return dx;
  }
};

}  // namespace

NetworkResult network_forward_backward(const NetworkShape& s, const Parameters& params,
                                       const float* images, const int32_t* labels, int count,
                                       bool training, uint64_t dropout_seed, int64_t step,
                                       Buffers* buffers, elementwise::LabelSmoothing smoothing) {
  const int n = s.batch;
  NetworkResult result;
  result.grads = Parameters::zeros(s);
  require(!s.has_batch_norm() || buffers, "reference: a batch-norm network needs its buffers");
  require(!s.has_batch_norm() || !training || count == n,
          "reference: batch norm trains on full batches only");
  ReferenceStep r(s, params, training, buffers);
  std::vector<float> x(images, images + size_t(n) * s.channels * s.height * s.width);
  for (size_t i = 0; i < s.convs.size(); ++i) x = r.conv_forward(i, x);
  if (training && s.has_batch_norm()) buffers->batches_tracked++;
  const auto& last_conv = s.convs.back();
  const int last_hw = last_conv.out_h * last_conv.out_w;
  if (s.global_pool) {
    std::vector<float> means(size_t(n) * last_conv.out_c);
    global_avgpool_forward(x.data(), means.data(), n, last_conv.out_c, last_hw);
    x = std::move(means);
  }
  for (size_t i = 0; i < s.denses.size(); ++i) {
    if (i + 1 == s.denses.size()) result.features = x;
    x = r.dense_forward_at(i, std::move(x), dropout_seed, step);
  }
  std::vector<float> grad(x.size());
  result.probs.resize(x.size());
  result.loss = softmax_cross_entropy(x.data(), labels, n, s.classes(), count, grad.data(),
                                      result.probs.data(), smoothing);
  for (size_t i = s.denses.size(); i-- > 0;)
    grad = r.dense_backward_at(i, std::move(grad), result.grads);
  if (s.global_pool) {
    std::vector<float> dx(size_t(n) * last_conv.out_c * last_hw);
    global_avgpool_backward(grad.data(), dx.data(), n, last_conv.out_c, last_hw);
    grad = std::move(dx);
  }
  for (size_t i = s.convs.size(); i-- > 0;) grad = r.conv_backward(i, grad, result.grads);
  return result;
}

}  // namespace histocnn::reference
