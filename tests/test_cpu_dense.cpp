// The CPU step's dense products (backends/cpu/dense_kernels.h) against a
// double-precision reference, on shapes from one row and one feature to
// fc1's at 200 px, with and without ReLU: forward, weight and bias
// gradients, data gradient; the small batches through the skinny kernels
// (1-12 rows of whole vectors) as well as sgemm.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/dense_kernels.h"
#include "core/rng.h"

namespace histocnn::cpu {
namespace {

std::vector<float> random_floats(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (auto& x : v) x = float(rng.normal());
  return v;
}

// |got - want| <= 1e-5 * (1 + the sum of |terms|) for each element: the
// rounding of a float sum of that many terms, whatever its order.
void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                  const std::vector<double>& magnitude, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  int wrong = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (std::abs(double(got[i]) - want[i]) > 1e-5 * (1 + magnitude[i]) && ++wrong <= 3)
      ADD_FAILURE() << what << "[" << i << "] = " << got[i] << ", want " << want[i];
  EXPECT_EQ(wrong, 0) << what;
}

struct DenseCase {
  int rows, in, out;
};
void PrintTo(const DenseCase& c, std::ostream* os) {
  *os << c.rows << " rows, " << c.in << " -> " << c.out;
}

class CpuDense : public ::testing::TestWithParam<DenseCase> {};

TEST_P(CpuDense, MatchesTheReferenceProducts) {
  const auto [rows, in, out] = GetParam();
  Rng rng(uint64_t(rows * 7919 + in * 31 + out));
  const std::vector<float> x = random_floats(size_t(rows) * in, rng);
  const std::vector<float> w = random_floats(size_t(out) * in, rng);
  const std::vector<float> b = random_floats(size_t(out), rng);
  const std::vector<float> dy = random_floats(size_t(rows) * out, rng);

  for (bool relu : {false, true}) {
    std::vector<float> y(size_t(rows) * out, 7.0f);  // overwritten
    dense_forward(rows, in, out, x.data(), w.data(), b.data(), relu, y.data());
    std::vector<double> want(y.size()), magnitude(y.size());
    for (int r = 0; r < rows; ++r)
      for (int o = 0; o < out; ++o) {
        double sum = b[o], abs_sum = std::abs(b[o]);
        for (int i = 0; i < in; ++i) {
          sum += double(x[r * in + i]) * w[o * in + i];
          abs_sum += std::abs(double(x[r * in + i]) * w[o * in + i]);
        }
        want[r * out + o] = relu ? std::max(sum, 0.0) : sum;
        magnitude[r * out + o] = abs_sum;
      }
    expect_close(y, want, magnitude, relu ? "relu(y)" : "y");
  }

  const size_t n_w = size_t(out) * in, n_b = size_t(out);
  std::vector<double> want_dw(n_w), mag_dw(n_w), want_db(n_b), mag_db(n_b);
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i)
      for (int r = 0; r < rows; ++r) {
        want_dw[o * in + i] += double(dy[r * out + o]) * x[r * in + i];
        mag_dw[o * in + i] += std::abs(double(dy[r * out + o]) * x[r * in + i]);
      }
    for (int r = 0; r < rows; ++r) {
      want_db[o] += dy[r * out + o];
      mag_db[o] += std::abs(dy[r * out + o]);
    }
  }
  const size_t n_x = size_t(rows) * in;
  std::vector<double> want_dx(n_x), mag_dx(n_x);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < in; ++i)
      for (int o = 0; o < out; ++o) {
        want_dx[r * in + i] += double(dy[r * out + o]) * w[o * in + i];
        mag_dx[r * in + i] += std::abs(double(dy[r * out + o]) * w[o * in + i]);
      }

  // The step's call (the skinny kernels where they apply), then sgemm's halves.
  for (bool fused : {true, false}) {
    SCOPED_TRACE(fused ? "dense_backward" : "sgemm halves");
    std::vector<float> dw(size_t(out) * in, 7.0f), db(size_t(out), 7.0f),
        dx(size_t(rows) * in, 7.0f);
    if (fused) {
      dense_backward(rows, in, out, x.data(), dy.data(), w.data(), dw.data(), db.data(), dx.data());
    } else {
      dense_backward_weights(rows, in, out, x.data(), dy.data(), dw.data(), db.data());
      dense_backward_data(rows, in, out, dy.data(), w.data(), dx.data());
    }
    expect_close(dw, want_dw, mag_dw, "dw");
    expect_close(db, want_db, mag_db, "db");
    expect_close(dx, want_dx, mag_dx, "dx");
  }
}

// Forward through the skinny kernels and through sgemm agree with the
// reference alike (above); here, that the skinny ones are taken where the
// header says, and that the A/B switch turns them off.
TEST(CpuDenseSkinny, TakenForSmallBatchesOfWholeVectorsOnly) {
  if (!dense_skinny(10, 30976)) GTEST_SKIP() << "no AVX-512 here (or oneDNN capped below it)";
  EXPECT_TRUE(dense_skinny(1, 16));
  EXPECT_TRUE(dense_skinny(kSkinnyRows, 64));
  EXPECT_FALSE(dense_skinny(kSkinnyRows + 1, 64));
  EXPECT_FALSE(dense_skinny(10, 30977));
  set_sgemm_dense(true);
  EXPECT_FALSE(dense_skinny(10, 30976));
  set_sgemm_dense(false);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuDense,
                         ::testing::Values(DenseCase{1, 1, 1}, DenseCase{1, 17, 2},
                                           DenseCase{3, 5, 7}, DenseCase{10, 64, 2},
                                           DenseCase{50, 1000, 64}, DenseCase{10, 33856, 64},
                                           DenseCase{1, 16, 5}, DenseCase{12, 48, 3},
                                           DenseCase{7, 30976, 64}, DenseCase{13, 64, 4}),
                         [](const auto& info) {
                           const DenseCase& c = info.param;
                           return std::to_string(c.rows) + "x" + std::to_string(c.in) + "to" +
                                  std::to_string(c.out);
                         });

}  // namespace
}  // namespace histocnn::cpu
