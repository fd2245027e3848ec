#include "data/stain_vahadane.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace histocnn {
namespace {

double quadratic(const double g[2][2], const double b[2], const double h[2]) {
  return 0.5 * (g[0][0] * h[0] * h[0] + 2 * g[0][1] * h[0] * h[1] + g[1][1] * h[1] * h[1]) -
         b[0] * h[0] - b[1] * h[1];
}

// One pass over the pixels for stains W: every pixel's concentrations h
// solved (and not kept), summed into what the stain update needs, A = H^T H
// and B = H^T V, and into the objective, which follows from them:
//   1/2 ||V - H W||^2 = 1/2 (||V||^2 - 2 sum_k w_k . B_k + sum_jk A_jk w_j . w_k).
struct PixelSums {
  double a[2][2] = {}, b[2][3] = {};
  double objective = 0;
};

PixelSums solve_concentrations(const float* od, size_t n, const double w[2][3], double lambda,
                               double od_squared) {
  double gram[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      gram[i][j] = w[i][0] * w[j][0] + w[i][1] * w[j][1] + w[i][2] * w[j][2];
  PixelSums s;
  double sum_h = 0;
  for (size_t p = 0; p < n; ++p) {
    const float* v = od + 3 * p;
    const double r[2] = {w[0][0] * v[0] + w[0][1] * v[1] + w[0][2] * v[2],
                         w[1][0] * v[0] + w[1][1] * v[1] + w[1][2] * v[2]};
    double h[2];
    nonneg_lasso_two(gram, r, lambda, h);
    s.a[0][0] += h[0] * h[0], s.a[0][1] += h[0] * h[1], s.a[1][1] += h[1] * h[1];
    for (int c = 0; c < 3; ++c) s.b[0][c] += h[0] * v[c], s.b[1][c] += h[1] * v[c];
    sum_h += h[0] + h[1];
  }
  s.a[1][0] = s.a[0][1];
  double cross = 0, fit = 0;
  for (int k = 0; k < 2; ++k)
    for (int c = 0; c < 3; ++c) cross += w[k][c] * s.b[k][c];
  for (int j = 0; j < 2; ++j)
    for (int k = 0; k < 2; ++k) fit += s.a[j][k] * gram[j][k];
  s.objective = std::max(0.0, 0.5 * (od_squared - 2 * cross + fit)) + lambda * sum_h;
  return s;
}

// Exact block minimisation over each stain row in turn: with H fixed the
// objective in row k is A_kk/2 ||w_k - u||^2 + const, so its minimum over
// {w >= 0, ||w|| <= 1} is u's projection (clip, then scale into the ball).
void update_stains(const PixelSums& s, double w[2][3]) {
  for (int k = 0; k < 2; ++k) {
    if (s.a[k][k] <= 1e-12) continue;  // a stain no pixel uses: nothing to fit it to
    double u[3], norm = 0;
    for (int c = 0; c < 3; ++c) {
      u[c] = w[k][c] + (s.b[k][c] - s.a[k][0] * w[0][c] - s.a[k][1] * w[1][c]) / s.a[k][k];
      u[c] = std::max(0.0, u[c]);
      norm += u[c] * u[c];
    }
    norm = std::sqrt(norm);
    for (int c = 0; c < 3; ++c) w[k][c] = norm > 1 ? u[c] / norm : u[c];
  }
}

// Tissue OD rows of the sampled pixels, at most `max_pixels` of them spread
// evenly over the tissue: one pass counts the tissue, a second keeps tissue
// pixel k * n / max_pixels for each k (never a copy of all of it: a pooled
// training sample holds millions of pixels).
std::vector<float> tissue_rows(const uint8_t* rgb, size_t pixels, size_t stride,
                               const VahadaneOptions& o) {
  float od[256];
  for (int v = 0; v < 256; ++v) od[v] = optical_density(uint8_t(v));
  const auto tissue = [&](const uint8_t* p) {
    return od[p[0]] + od[p[1]] + od[p[2]] >= 3 * o.od_threshold;
  };
  size_t n = 0;
  for (size_t i = 0; i < pixels; i += stride) n += tissue(rgb + 3 * i) ? 1 : 0;
  const size_t keep = std::min(n, o.max_pixels);
  std::vector<float> rows;
  rows.reserve(3 * keep);
  size_t seen = 0, k = 0;
  for (size_t i = 0; i < pixels && k < keep; i += stride) {
    const uint8_t* p = rgb + 3 * i;
    if (!tissue(p)) continue;
    if (seen++ != k * n / keep) continue;
    for (int c = 0; c < 3; ++c) rows.push_back(od[p[c]]);
    ++k;
  }
  return rows;
}

}  // namespace

void nonneg_lasso_two(const double g[2][2], const double r[2], double lambda, double h[2]) {
  const double b[2] = {r[0] - lambda, r[1] - lambda};
  // Both stains: the unconstrained minimum, when it lies in the quadrant, is
  // the answer (G is positive definite; most tissue pixels end here).
  const double det = g[0][0] * g[1][1] - g[0][1] * g[1][0];
  if (det > 1e-12 * g[0][0] * g[1][1]) {
    h[0] = (g[1][1] * b[0] - g[0][1] * b[1]) / det;
    h[1] = (g[0][0] * b[1] - g[1][0] * b[0]) / det;
    if (h[0] >= 0 && h[1] >= 0) return;
  }
  // Otherwise an edge: H alone or E alone (the origin is either's clip).
  double best[2] = {0, 0};
  double best_q = 0;
  const auto consider = [&](double h0, double h1) {
    const double c[2] = {h0, h1};
    const double q = quadratic(g, b, c);
    if (q < best_q) best_q = q, best[0] = h0, best[1] = h1;
  };
  if (g[0][0] > 0) consider(std::max(0.0, b[0] / g[0][0]), 0);
  if (g[1][1] > 0) consider(0, std::max(0.0, b[1] / g[1][1]));
  h[0] = best[0], h[1] = best[1];
}

SparseNmf sparse_nmf_two_stains(const float* od, size_t n, const double w0[2][3],
                                const VahadaneOptions& o) {
  require(n >= 1, "sparse_nmf_two_stains: no pixels");
  SparseNmf f;
  for (int k = 0; k < 2; ++k)
    for (int c = 0; c < 3; ++c) f.w[k][c] = w0[k][c];
  double od_squared = 0;
  for (size_t i = 0; i < 3 * n; ++i) od_squared += double(od[i]) * od[i];
  PixelSums sums = solve_concentrations(od, n, f.w, o.lambda, od_squared);
  f.objective.push_back(sums.objective);
  for (int it = 0; it < o.max_iterations; ++it) {
    update_stains(sums, f.w);
    const double previous = sums.objective;
    sums = solve_concentrations(od, n, f.w, o.lambda, od_squared);
    f.objective.push_back(sums.objective);
    if (previous - sums.objective <= o.tolerance * previous) break;
  }
  return f;
}

StainMatrix estimate_stains_vahadane(const uint8_t* rgb, size_t pixels, const std::string& what,
                                     const VahadaneOptions& o, size_t stride) {
  require(stride >= 1, "estimate_stains_vahadane: stride must be positive");
  const std::vector<float> od = tissue_rows(rgb, pixels, stride, o);
  const size_t n = od.size() / 3;
  require(n >= size_t(std::max(o.min_tissue_pixels, 3)),
          what + ": too little stained tissue to estimate its stains (" + std::to_string(n) +
              " pixels above OD " + std::to_string(o.od_threshold) + ")");
  double w0[2][3];
  for (int k = 0; k < 2; ++k)
    for (int c = 0; c < 3; ++c) w0[k][c] = hed_stain_vectors()[size_t(k)][size_t(c)];
  const SparseNmf f = sparse_nmf_two_stains(od.data(), n, w0, o);
  // Haematoxylin absorbs more red than eosin does.
  const int h = f.w[0][0] >= f.w[1][0] ? 0 : 1;
  StainMatrix s;
  for (int k = 0; k < 2; ++k) {
    const double* row = f.w[k == 0 ? h : 1 - h];
    const double norm = std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
    require(norm > 1e-6, what + ": the sparse stain factorisation left a stain empty");
    for (int c = 0; c < 3; ++c) s.he[k][c] = float(row[c] / norm);
  }
  set_concentration_range(s, rgb, pixels, stride, what);
  return s;
}

}  // namespace histocnn
