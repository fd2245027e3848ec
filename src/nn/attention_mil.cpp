#include "nn/attention_mil.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace histocnn {
namespace {

// Offsets of the parameter blocks (see the header's order).
struct Layout {
  int64_t d, l;
  int64_t v() const { return 0; }
  int64_t bv() const { return l * d; }
  int64_t u() const { return bv() + l; }
  int64_t bu() const { return u() + l * d; }
  int64_t w() const { return bu() + l; }
  int64_t c() const { return w() + l; }
  int64_t c0() const { return c() + d; }
  int64_t count() const { return c0() + 1; }
};

double sigmoid(double x) {
  return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
}

// What the backward pass needs of the forward one.
struct Pass {
  std::vector<double> x;     // n x D, standardised
  std::vector<double> t, s;  // n x L: tanh and sigmoid branches
  std::vector<double> z;     // D
  AttentionMil::Output out;
};

Pass run_forward(const AttentionMil& m, const float* tiles, int64_t n) {
  require(n >= 1, "attention MIL: a slide without tiles");
  const Layout at{m.features, m.attention};
  const int64_t d = at.d, l = at.l;
  const float* p = m.params.data();
  Pass pass;
  pass.x.resize(size_t(n * d));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      pass.x[size_t(i * d + j)] =
          (double(tiles[i * d + j]) - m.mean[size_t(j)]) * double(m.inv_sd[size_t(j)]);
  pass.t.resize(size_t(n * l));
  pass.s.resize(size_t(n * l));
  std::vector<double> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const double* x = &pass.x[size_t(i * d)];
    double score = 0;
    for (int64_t k = 0; k < l; ++k) {
      double pv = p[at.bv() + k], pu = p[at.bu() + k];
      const float* vk = p + at.v() + k * d;
      const float* uk = p + at.u() + k * d;
      for (int64_t j = 0; j < d; ++j) {
        pv += double(vk[j]) * x[j];
        pu += double(uk[j]) * x[j];
      }
      const double t = std::tanh(pv), s = sigmoid(pu);
      pass.t[size_t(i * l + k)] = t;
      pass.s[size_t(i * l + k)] = s;
      score += double(p[at.w() + k]) * t * s;
    }
    a[size_t(i)] = score;
  }
  const double top = *std::max_element(a.begin(), a.end());
  double sum = 0;
  for (double& v : a) sum += (v = std::exp(v - top));
  pass.out.attention.resize(size_t(n));
  pass.z.assign(size_t(d), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double alpha = a[size_t(i)] / sum;
    pass.out.attention[size_t(i)] = alpha;
    for (int64_t j = 0; j < d; ++j) pass.z[size_t(j)] += alpha * pass.x[size_t(i * d + j)];
  }
  double logit = p[at.c0()];
  for (int64_t j = 0; j < d; ++j) logit += double(p[at.c() + j]) * pass.z[size_t(j)];
  pass.out.logit = logit;
  pass.out.p_malignant = sigmoid(logit);
  return pass;
}

}  // namespace

int64_t AttentionMil::parameter_count(int features, int attention) {
  return Layout{features, attention}.count();
}

std::vector<AttentionMil::Block> AttentionMil::parameter_blocks(int features, int attention) {
  const Layout at{features, attention};
  const int64_t d = at.d, l = at.l;
  return {{"attention_V", at.v(), {l, d}},  {"attention_bV", at.bv(), {l}},
          {"attention_U", at.u(), {l, d}},  {"attention_bU", at.bu(), {l}},
          {"attention_w", at.w(), {l}},     {"classifier_weight", at.c(), {1, d}},
          {"classifier_bias", at.c0(), {1}}};
}

AttentionMil AttentionMil::initial(int features, int attention, uint64_t seed) {
  require(features >= 1 && attention >= 1, "attention MIL: widths must be positive");
  AttentionMil m;
  m.features = features;
  m.attention = attention;
  m.mean.assign(size_t(features), 0.0f);
  m.inv_sd.assign(size_t(features), 1.0f);
  const Layout at{features, attention};
  m.params.assign(size_t(at.count()), 0.0f);
  Rng rng(seed);
  auto glorot = [&](int64_t first, int64_t fan_in, int64_t fan_out) {
    const double limit = std::sqrt(6.0 / double(fan_in + fan_out));
    for (int64_t i = 0; i < fan_in * fan_out; ++i)
      m.params[size_t(first + i)] = float(rng.uniform(-limit, limit));
  };
  glorot(at.v(), features, attention);
  glorot(at.u(), features, attention);
  glorot(at.w(), attention, 1);
  // The classifier starts at zero: its first steps follow the difference of
  // the classes' mean tiles, and the attention then learns to seek what
  // the classifier calls malignant. A random start can set it against a
  // feature that marks tumour, after which the attention learns to avoid
  // tumour tiles in malignant slides and the classifier never sees them
  // (a synthetic cohort in tests/test_attention_mil.cpp got stuck so).
  return m;
}

void AttentionMil::standardise(const std::vector<const std::vector<float>*>& bags) {
  std::vector<double> sum(size_t(features), 0.0), square(size_t(features), 0.0);
  int64_t rows = 0;
  for (const std::vector<float>* bag : bags) {
    require(bag->size() % size_t(features) == 0, "attention MIL: a bag of the wrong width");
    for (size_t r = 0; r < bag->size(); r += size_t(features), ++rows)
      for (size_t j = 0; j < size_t(features); ++j) {
        sum[j] += (*bag)[r + j];
        square[j] += double((*bag)[r + j]) * (*bag)[r + j];
      }
  }
  require(rows > 0, "attention MIL: no tiles to standardise the features on");
  for (size_t j = 0; j < size_t(features); ++j) {
    const double mu = sum[j] / double(rows);
    const double var = std::max(0.0, square[j] / double(rows) - mu * mu);
    mean[j] = float(mu);
    inv_sd[j] = var > 1e-12 ? float(1 / std::sqrt(var)) : 1.0f;
  }
}

AttentionMil::Output AttentionMil::forward(const float* tiles, int64_t n) const {
  return run_forward(*this, tiles, n).out;
}

double AttentionMil::loss_and_gradient(const float* tiles, int64_t n, int label,
                                       std::vector<double>& grads) const {
  require(label == 0 || label == 1, "attention MIL: labels are 0 or 1");
  require(grads.size() == params.size(), "attention MIL: gradients of another size");
  const Pass pass = run_forward(*this, tiles, n);
  const Layout at{features, attention};
  const int64_t d = at.d, l = at.l;
  const float* p = params.data();
  const double logit = pass.out.logit;
  // log(1 + e^logit) - label * logit, without overflow.
  const double loss = std::max(logit, 0.0) + std::log1p(std::exp(-std::abs(logit))) - label * logit;
  const double dlogit = pass.out.p_malignant - label;
  grads[size_t(at.c0())] += dlogit;
  std::vector<double> dz(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) {
    grads[size_t(at.c() + j)] += dlogit * pass.z[size_t(j)];
    dz[size_t(j)] = dlogit * double(p[at.c() + j]);
  }
  // Through the softmax: da_i = alpha_i (dalpha_i - sum_j alpha_j dalpha_j).
  std::vector<double> dalpha(static_cast<size_t>(n));
  double mean_dalpha = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = 0;
    for (int64_t j = 0; j < d; ++j) v += dz[size_t(j)] * pass.x[size_t(i * d + j)];
    dalpha[size_t(i)] = v;
    mean_dalpha += pass.out.attention[size_t(i)] * v;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double da = pass.out.attention[size_t(i)] * (dalpha[size_t(i)] - mean_dalpha);
    const double* x = &pass.x[size_t(i * d)];
    for (int64_t k = 0; k < l; ++k) {
      const double t = pass.t[size_t(i * l + k)], s = pass.s[size_t(i * l + k)];
      grads[size_t(at.w() + k)] += da * t * s;
      const double dg = da * double(p[at.w() + k]);
      const double dpv = dg * s * (1 - t * t), dpu = dg * t * s * (1 - s);
      grads[size_t(at.bv() + k)] += dpv;
      grads[size_t(at.bu() + k)] += dpu;
      double* gv = &grads[size_t(at.v() + k * d)];
      double* gu = &grads[size_t(at.u() + k * d)];
      for (int64_t j = 0; j < d; ++j) {
        gv[j] += dpv * x[j];
        gu[j] += dpu * x[j];
      }
    }
  }
  return loss;
}

}  // namespace histocnn
