#include "data/stain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "data/csv_text.h"
#include "data/stain_vahadane.h"

namespace histocnn {
namespace {

struct OdTable {
  float od[256];
  OdTable() {
    for (int v = 0; v < 256; ++v) od[v] = -std::log((v + 1.0f) / 256.0f);
  }
};
const OdTable& od_table() {
  static const OdTable table;
  return table;
}

// Inverse of a 3x3 matrix (row-major); the stain matrix is well conditioned.
void invert3(const double m[3][3], double inv[3][3]) {
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  inv[0][0] = (m[1][1] * m[2][2] - m[1][2] * m[2][1]) / det;
  inv[0][1] = (m[0][2] * m[2][1] - m[0][1] * m[2][2]) / det;
  inv[0][2] = (m[0][1] * m[1][2] - m[0][2] * m[1][1]) / det;
  inv[1][0] = (m[1][2] * m[2][0] - m[1][0] * m[2][2]) / det;
  inv[1][1] = (m[0][0] * m[2][2] - m[0][2] * m[2][0]) / det;
  inv[1][2] = (m[0][2] * m[1][0] - m[0][0] * m[1][2]) / det;
  inv[2][0] = (m[1][0] * m[2][1] - m[1][1] * m[2][0]) / det;
  inv[2][1] = (m[0][1] * m[2][0] - m[0][0] * m[2][1]) / det;
  inv[2][2] = (m[0][0] * m[1][1] - m[0][1] * m[1][0]) / det;
}

double percentile(std::vector<double> values, double p) {
  // Linear interpolation between closest ranks, as numpy.percentile.
  if (values.empty()) return 0.0;
  const double rank = p / 100.0 * double(values.size() - 1);
  const size_t lo = size_t(std::floor(rank));
  std::nth_element(values.begin(), values.begin() + lo, values.end());
  const double a = values[lo];
  if (lo + 1 >= values.size()) return a;
  const double b = *std::min_element(values.begin() + lo + 1, values.end());
  return a + (rank - double(lo)) * (b - a);
}

// Least-squares concentrations of one OD pixel for two unit stain vectors.
struct TwoStainSolver {
  double he[2][3];
  double inv[2][2];
  explicit TwoStainSolver(const StainMatrix& s) {
    for (int r = 0; r < 2; ++r)
      for (int c = 0; c < 3; ++c) he[r][c] = s.he[r][c];
    double g[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j)
        g[i][j] = he[i][0] * he[j][0] + he[i][1] * he[j][1] + he[i][2] * he[j][2];
    const double det = g[0][0] * g[1][1] - g[0][1] * g[1][0];
    require(std::abs(det) > 1e-9, "stain matrix: haematoxylin and eosin vectors are parallel");
    inv[0][0] = g[1][1] / det, inv[0][1] = -g[0][1] / det;
    inv[1][0] = -g[1][0] / det, inv[1][1] = g[0][0] / det;
  }
  void solve(const float od[3], double c[2]) const {
    const double r0 = he[0][0] * od[0] + he[0][1] * od[1] + he[0][2] * od[2];
    const double r1 = he[1][0] * od[0] + he[1][1] * od[1] + he[1][2] * od[2];
    c[0] = inv[0][0] * r0 + inv[0][1] * r1;
    c[1] = inv[1][0] * r0 + inv[1][1] * r1;
  }
};

}  // namespace

float optical_density(uint8_t value) {
  return od_table().od[value];
}

uint8_t intensity_of(float od) {
  const float v = 256.0f * std::exp(-od) - 1.0f;
  return uint8_t(std::clamp(std::lround(v), 0L, 255L));
}

const std::array<std::array<float, 3>, 3>& hed_stain_vectors() {
  static const std::array<std::array<float, 3>, 3> rows = [] {
    // Ruifrok & Johnston (2001), as scikit-image's rgb_from_hed; unit rows.
    std::array<std::array<float, 3>, 3> m = {
        {{0.65f, 0.70f, 0.29f}, {0.07f, 0.99f, 0.11f}, {0.27f, 0.57f, 0.78f}}};
    for (auto& row : m) {
      const float n = std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
      for (float& x : row) x /= n;
    }
    return m;
  }();
  return rows;
}

HedJitter HedJitter::draw(float sigma, const float alpha_u[3], const float beta_u[3]) {
  // hed = od M^-1; hed' = hed * alpha + beta; od' = hed' M
  //   => od' = od (M^-1 diag(alpha) M) + beta M.
  const auto& rows = hed_stain_vectors();
  double m[3][3], inv[3][3];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m[r][c] = rows[r][c];
  invert3(m, inv);
  double alpha[3], beta[3];
  for (int i = 0; i < 3; ++i) {
    alpha[i] = 1.0 + double(sigma) * alpha_u[i];
    beta[i] = double(sigma) * beta_u[i];
  }
  HedJitter j{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      double s = 0;
      for (int k = 0; k < 3; ++k) s += inv[r][k] * alpha[k] * m[k][c];
      j.a[r][c] = float(s);
    }
  for (int c = 0; c < 3; ++c) {
    double s = 0;
    for (int k = 0; k < 3; ++k) s += beta[k] * m[k][c];
    j.b[c] = float(s);
  }
  return j;
}

HedJitter HedJitter::identity() {
  HedJitter j{};
  for (int i = 0; i < 3; ++i) j.a[i][i] = 1.0f;
  return j;
}

void HedJitter::apply(const float od_in[3], float od_out[3]) const {
  const float x0 = od_in[0], x1 = od_in[1], x2 = od_in[2];
  for (int c = 0; c < 3; ++c)
    od_out[c] = std::max(0.0f, x0 * a[0][c] + x1 * a[1][c] + x2 * a[2][c] + b[c]);
}

bool HedTables::build(const HedJitter& hed, const float (&od_of)[3][256]) {
  for (int c = 0; c < 3; ++c) {
    float worst = std::abs(hed.b[c]);
    for (int k = 0; k < 3; ++k) {
      float largest = 0;
      for (int v = 0; v < 256; ++v) largest = std::max(largest, std::abs(od_of[k][v]));
      worst += largest * std::abs(hed.a[k][c]);
    }
    if (!(worst < 60.0f)) return false;
  }
  for (int c = 0; c < 3; ++c) {
    bias[c] = std::exp(-hed.b[c]);
    for (int k = 0; k < 3; ++k)
      for (int v = 0; v < 256; ++v) factor[c][k][v] = std::exp(-od_of[k][v] * hed.a[k][c]);
  }
  return true;
}

std::string StainMatrix::text() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g", he[0][0], he[0][1],
                he[0][2], he[1][0], he[1][1], he[1][2], max_concentration[0], max_concentration[1]);
  return buf;
}

StainMatrix StainMatrix::parse(const std::string& text, const std::string& where) {
  StainMatrix s;
  char tail = 0;
  const int read = std::sscanf(text.c_str(), "%f,%f,%f,%f,%f,%f,%f,%f%c", &s.he[0][0], &s.he[0][1],
                               &s.he[0][2], &s.he[1][0], &s.he[1][1], &s.he[1][2],
                               &s.max_concentration[0], &s.max_concentration[1], &tail);
  bool ok = read == 8 && s.max_concentration[0] > 0 && s.max_concentration[1] > 0;
  for (int r = 0; r < 2 && ok; ++r) {
    const float n =
        std::sqrt(s.he[r][0] * s.he[r][0] + s.he[r][1] * s.he[r][1] + s.he[r][2] * s.he[r][2]);
    ok = std::isfinite(n) && std::abs(n - 1.0f) < 1e-3f;
  }
  require(ok, where + ": bad stain matrix '" + text +
                  "' (expected 8 numbers: two unit OD vectors and two positive maxima)");
  return s;
}

void symmetric_eigen3(const double input[3][3], double values[3], double vectors[3][3]) {
  double a[3][3], v[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) a[i][j] = input[i][j];
  // Cyclic Jacobi rotations; 3x3 converges to double precision in a few sweeps.
  for (int sweep = 0; sweep < 50; ++sweep) {
    const double off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
    if (off < 1e-30) break;
    for (int p = 0; p < 2; ++p)
      for (int q = p + 1; q < 3; ++q) {
        if (std::abs(a[p][q]) < 1e-300) continue;
        const double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < 3; ++k) {  // A <- A J
          const double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < 3; ++k) {  // A <- J^T A
          const double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < 3; ++k) {  // V <- V J (columns are eigenvectors)
          const double vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
  }
  int order[3] = {0, 1, 2};
  std::sort(order, order + 3, [&](int x, int y) { return a[x][x] > a[y][y]; });
  for (int i = 0; i < 3; ++i) {
    values[i] = a[order[i]][order[i]];
    for (int k = 0; k < 3; ++k) vectors[i][k] = v[k][order[i]];
  }
}

StainMatrix estimate_stains(const uint8_t* rgb, size_t pixels, const std::string& what,
                            const MacenkoOptions& options, size_t stride) {
  require(stride >= 1, "estimate_stains: stride must be positive");
  const float* od = od_table().od;
  // Tissue: mean OD at least the threshold. (Macenko drops pixels with any
  // channel below it, which also drops pale eosin-only stroma, whose red OD is
  // a small fraction of its green; the eosin extreme then comes out wrong.)
  std::vector<float> tissue;
  double mean[3] = {0, 0, 0};
  for (size_t i = 0; i < pixels; i += stride) {
    const uint8_t* p = rgb + 3 * i;
    const float x[3] = {od[p[0]], od[p[1]], od[p[2]]};
    if (x[0] + x[1] + x[2] < 3 * options.od_threshold) continue;
    for (int c = 0; c < 3; ++c) tissue.push_back(x[c]), mean[c] += x[c];
  }
  const size_t n = tissue.size() / 3;
  require(n >= size_t(std::max(options.min_tissue_pixels, 3)),
          what + ": too little stained tissue to estimate its stains (" + std::to_string(n) +
              " pixels above OD " + std::to_string(options.od_threshold) + ")");
  for (double& m : mean) m /= double(n);
  double cov[3][3] = {};
  for (size_t i = 0; i < n; ++i) {
    const float* x = &tissue[3 * i];
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) cov[r][c] += (x[r] - mean[r]) * (x[c] - mean[c]);
  }
  double values[3], axes[3][3];
  symmetric_eigen3(cov, values, axes);
  // The largest axis points along the mean optical density: orient it so
  // tissue projects positively. The second axis's sign only swaps the two
  // extreme angles, which the H/E assignment below undoes.
  const double* v1 = axes[0];
  const double* v2 = axes[1];
  double sign = (v1[0] + v1[1] + v1[2]) < 0 ? -1.0 : 1.0;
  std::vector<double> angles(n);
  for (size_t i = 0; i < n; ++i) {
    const float* x = &tissue[3 * i];
    const double p1 = sign * (v1[0] * x[0] + v1[1] * x[1] + v1[2] * x[2]);
    const double p2 = v2[0] * x[0] + v2[1] * x[1] + v2[2] * x[2];
    angles[i] = std::atan2(p2, p1);
  }
  const double lo = percentile(angles, options.angle_percentile);
  const double hi = percentile(angles, 100.0 - options.angle_percentile);
  double a[3], b[3];
  for (int c = 0; c < 3; ++c) {
    a[c] = sign * v1[c] * std::cos(lo) + v2[c] * std::sin(lo);
    b[c] = sign * v1[c] * std::cos(hi) + v2[c] * std::sin(hi);
  }
  // Haematoxylin absorbs more red than eosin does.
  const double* h = a[0] > b[0] ? a : b;
  const double* e = a[0] > b[0] ? b : a;
  StainMatrix s;
  for (int c = 0; c < 3; ++c) s.he[0][c] = float(h[c]), s.he[1][c] = float(e[c]);
  for (auto& row : s.he) {
    const float norm = std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
    for (float& x : row) x /= norm;
  }
  set_concentration_range(s, rgb, pixels, stride, what);
  return s;
}

void set_concentration_range(StainMatrix& s, const uint8_t* rgb, size_t pixels, size_t stride,
                             const std::string& what) {
  const float* od = od_table().od;
  const TwoStainSolver solver(s);
  std::vector<double> ch, ce;
  ch.reserve(pixels / stride + 1), ce.reserve(pixels / stride + 1);
  for (size_t i = 0; i < pixels; i += stride) {
    const uint8_t* p = rgb + 3 * i;
    const float x[3] = {od[p[0]], od[p[1]], od[p[2]]};
    double c[2];
    solver.solve(x, c);
    ch.push_back(c[0]), ce.push_back(c[1]);
  }
  s.max_concentration[0] = float(percentile(std::move(ch), 99.0));
  s.max_concentration[1] = float(percentile(std::move(ce), 99.0));
  require(s.max_concentration[0] > 0 && s.max_concentration[1] > 0,
          what + ": stain estimate degenerate (non-positive concentration range)");
}

namespace {
constexpr StainMethod kStainMethods[] = {StainMethod::macenko, StainMethod::vahadane};

// Every recipe, in the order their names are listed.
std::vector<StainRecipe> every_stain_recipe() {
  std::vector<StainRecipe> recipes;
  for (StainMethod m : kStainMethods)
    for (bool residual : {false, true}) recipes.push_back({m, residual});
  return recipes;
}
}  // namespace

const char* stain_method_name(StainMethod method) {
  return method == StainMethod::vahadane ? "vahadane" : "macenko";
}

StainMethod parse_stain_method(const std::string& name, const std::string& where) {
  for (StainMethod m : kStainMethods)
    if (name == stain_method_name(m)) return m;
  fail(where + ": expected macenko or vahadane, got '" + name + "'");
}

std::string StainRecipe::name() const {
  return std::string(stain_method_name(method)) + (keep_residual ? "-residual" : "");
}

StainRecipe StainRecipe::parse(const std::string& name, const std::string& where) {
  for (const StainRecipe& r : every_stain_recipe())
    if (r.name() == name) return r;
  fail(where + ": expected one of " + comma_list(stain_recipe_names()) + ", got '" + name + "'");
}

const std::vector<std::string>& stain_recipe_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const StainRecipe& r : every_stain_recipe()) out.push_back(r.name());
    return out;
  }();
  return names;
}

StainMatrix estimate_stains_with(StainMethod method, const uint8_t* rgb, size_t pixels,
                                 const std::string& what, size_t stride) {
  if (method == StainMethod::vahadane)
    return estimate_stains_vahadane(rgb, pixels, what, {}, stride);
  return estimate_stains(rgb, pixels, what, {}, stride);
}

StainMatrix estimate_stains_with(StainMethod method, const Image& image, const std::string& what) {
  return estimate_stains_with(method, image.rgb.data(), size_t(image.width) * image.height, what);
}

StainMatrix estimate_stains(const Image& image, const std::string& what,
                            const MacenkoOptions& options) {
  return estimate_stains(image.rgb.data(), size_t(image.width) * image.height, what, options);
}

Image normalize_stains(const Image& image, const StainMatrix& source, const StainMatrix& target,
                       bool keep_residual) {
  const TwoStainSolver solver(source);
  const float* od = od_table().od;
  const double scale[2] = {double(target.max_concentration[0]) / source.max_concentration[0],
                           double(target.max_concentration[1]) / source.max_concentration[1]};
  Image out;
  out.width = image.width, out.height = image.height;
  out.rgb.resize(image.rgb.size());
  const size_t pixels = size_t(image.width) * image.height;
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* p = &image.rgb[3 * i];
    const float x[3] = {od[p[0]], od[p[1]], od[p[2]]};
    double c[2];
    solver.solve(x, c);
    double residual[3] = {0, 0, 0};
    if (keep_residual)
      for (int k = 0; k < 3; ++k)
        residual[k] = x[k] - (c[0] * source.he[0][k] + c[1] * source.he[1][k]);
    c[0] *= scale[0], c[1] *= scale[1];
    for (int k = 0; k < 3; ++k)
      out.rgb[3 * i + k] =
          intensity_of(float(c[0] * target.he[0][k] + c[1] * target.he[1][k] + residual[k]));
  }
  return out;
}

Image normalize_stains(const Image& image, const StainMatrix& target, const StainRecipe& recipe) {
  try {
    return normalize_stains(image, estimate_stains_with(recipe.method, image, "image"), target,
                            recipe.keep_residual);
  } catch (const Error&) {
    // Almost no tissue (a blank tile): its colours carry no stain to map.
    return image;
  }
}

}  // namespace histocnn
