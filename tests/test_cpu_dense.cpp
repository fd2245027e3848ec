// The CPU step's dense products (backends/cpu/dense_kernels.h) against a
// double-precision reference, on shapes from one row and one feature to
// fc1's at 200 px, with and without ReLU: forward, weight and bias
// gradients, data gradient; the small batches through each version of the
// skinny kernels the machine has (1-12 rows of whole vectors) as well as
// sgemm.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/dense_kernels.h"
#include "core/rng.h"
#include "kernel_cap.h"

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

  for (bool relu : {false, true})
    for (const char* cap : {"avx512", "avx2", "portable"}) {
      const testing::CappedKernels capped(cap_dense, cap);
      SCOPED_TRACE(std::string("capped at ") + cap + ": " + dense_versions(rows, in).forward);
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

  // The step's call (each version of the skinny kernels where they apply),
  // then sgemm's halves.
  for (const char* cap : {"avx512", "avx2", ""}) {
    const bool fused = *cap != '\0';
    const testing::CappedKernels capped(cap_dense, fused ? cap : "avx512");
    SCOPED_TRACE(fused ? std::string("dense_backward capped at ") + cap + ": " +
                             dense_versions(rows, in).backward
                       : std::string("sgemm halves"));
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

// Every version agrees with the reference (above); here, that each is taken
// where the header says (AVX2: backward only), and that the cap turns them
// off.
TEST(CpuDenseSkinny, TakenForSmallBatchesOfWholeVectorsOnly) {
  for (const std::string isa : {"avx512", "avx2"}) {
    const testing::CappedKernels capped(cap_dense, isa);
    if (dense_versions(1, 16).backward != isa) continue;  // not on this machine
    const std::string forward = isa == "avx512" ? isa : "sgemm";
    const int lanes = isa == "avx512" ? 16 : 8;
    EXPECT_EQ(dense_versions(1, lanes).backward, isa);
    EXPECT_EQ(dense_versions(1, lanes).forward, forward);
    EXPECT_EQ(dense_versions(kSkinnyRows, 4 * lanes).backward, isa);
    EXPECT_EQ(dense_versions(kSkinnyRows, 4 * lanes).forward, forward);
    for (const DenseVersions& v :
         {dense_versions(kSkinnyRows + 1, 64), dense_versions(10, 30976 + lanes / 2),
          dense_versions(10, 30976 + 1)}) {
      EXPECT_EQ(v.forward, "sgemm") << isa;
      EXPECT_EQ(v.backward, "sgemm") << isa;
    }
  }
  const testing::CappedKernels sgemm_only(cap_dense, "portable");
  EXPECT_EQ(dense_versions(10, 30976).forward, "sgemm");
  EXPECT_EQ(dense_versions(10, 30976).backward, "sgemm");
}

// The AVX2 backward takes each element's terms in the AVX-512 version's
// order (dw over the rows, dx over the outputs, one FMA each): the same bits.
TEST(CpuDenseSkinny, TheVersionsGradientsAreTheSameBits) {
  if (dense_versions(10, 64).backward != "avx512") GTEST_SKIP() << "no AVX-512 here to compare";
  const int rows = 10, in = 640, out = 64;
  Rng rng(5);
  const std::vector<float> x = random_floats(size_t(rows) * in, rng);
  const std::vector<float> w = random_floats(size_t(out) * in, rng);
  const std::vector<float> dy = random_floats(size_t(rows) * out, rng);
  std::vector<std::vector<float>> dw, dx;
  for (const char* isa : {"avx512", "avx2"}) {
    const testing::CappedKernels capped(cap_dense, isa);
    ASSERT_EQ(dense_versions(rows, in).backward, isa);
    std::vector<float> d(size_t(out) * in), db(static_cast<size_t>(out)), dxs(size_t(rows) * in);
    dense_backward(rows, in, out, x.data(), dy.data(), w.data(), d.data(), db.data(), dxs.data());
    dw.push_back(d);
    dx.push_back(dxs);
  }
  EXPECT_EQ(dw[0], dw[1]);
  EXPECT_EQ(dx[0], dx[1]);
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
