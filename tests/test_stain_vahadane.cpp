// Vahadane's stain estimate (data/stain_vahadane.h): the per-pixel solver
// against its optimality conditions, the factorisation's objective, known
// stainings recovered and mapped; the recipes' names.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "data/stain.h"
#include "data/stain_vahadane.h"
#include "stain_images.h"

namespace histocnn {
namespace {
using namespace stain_images;

void gram_of(const double w[2][3], double g[2][2]) {
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) g[i][j] = w[i][0] * w[j][0] + w[i][1] * w[j][1] + w[i][2] * w[j][2];
}

// The conditions that make h the minimum of 1/2 h'Gh - b'h over h >= 0 (a
// convex problem, so they are sufficient): with gradient d = Gh - b, d_i = 0
// where h_i > 0 and d_i >= 0 where h_i = 0.
void expect_optimal(const double g[2][2], const double r[2], double lambda, const double h[2],
                    const std::string& where) {
  for (int i = 0; i < 2; ++i) {
    EXPECT_GE(h[i], 0.0) << where;
    const double d = g[i][0] * h[0] + g[i][1] * h[1] - (r[i] - lambda);
    const double scale = 1 + std::abs(r[i]);
    if (h[i] > 0)
      EXPECT_NEAR(d, 0.0, 1e-9 * scale) << where << " stain " << i;
    else
      EXPECT_GE(d, -1e-9 * scale) << where << " stain " << i;
  }
}

TEST(Vahadane, PixelLassoMeetsItsOptimalityConditions) {
  Rng rng(21);
  int interior = 0, edge = 0, origin = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    double w[2][3], g[2][2], dot = 0;
    do {
      for (auto& row : w) {
        double n = 0;
        for (double& x : row) x = rng.uniform(0.0, 1.0), n += x * x;
        const double length = rng.uniform(0.5, 1.0) / std::sqrt(n);
        for (double& x : row) x *= length;
      }
      gram_of(w, g);
      dot = g[0][1] / std::sqrt(g[0][0] * g[1][1]);
    } while (dot > std::cos(5 * M_PI / 180));  // stains at least 5 degrees apart
    const double v[3] = {rng.uniform(0.0, 2.0), rng.uniform(0.0, 2.0), rng.uniform(0.0, 2.0)};
    const double r[2] = {w[0][0] * v[0] + w[0][1] * v[1] + w[0][2] * v[2],
                         w[1][0] * v[0] + w[1][1] * v[1] + w[1][2] * v[2]};
    const double lambda = trial % 3 == 0 ? 0.0 : trial % 3 == 1 ? 0.1 : 1.0;
    double h[2];
    nonneg_lasso_two(g, r, lambda, h);
    expect_optimal(g, r, lambda, h, "trial " + std::to_string(trial));
    (h[0] > 0 && h[1] > 0 ? interior : h[0] > 0 || h[1] > 0 ? edge : origin)++;
  }
  // Every kind of solution was met, so each branch was checked.
  EXPECT_GT(interior, 100);
  EXPECT_GT(edge, 100);
  EXPECT_GT(origin, 10);
}

TEST(Vahadane, PixelLassoWithParallelStainsTakesTheOneDimensionalMinimum) {
  const double w[2][3] = {{0.6, 0.7, 0.3}, {0.6, 0.7, 0.3}};
  double g[2][2];
  gram_of(w, g);
  const double r[2] = {1.2, 1.2};
  double h[2];
  nonneg_lasso_two(g, r, 0.1, h);
  EXPECT_NEAR(h[0] + h[1], (1.2 - 0.1) / g[0][0], 1e-12);
  expect_optimal(g, r, 0.1, h, "parallel");
}

std::vector<float> tissue_od(const Image& im) {
  std::vector<float> od;
  for (size_t i = 0; i < im.rgb.size(); i += 3) {
    const float x[3] = {optical_density(im.rgb[i]), optical_density(im.rgb[i + 1]),
                        optical_density(im.rgb[i + 2])};
    if (x[0] + x[1] + x[2] >= 0.45f) od.insert(od.end(), x, x + 3);
  }
  return od;
}

TEST(Vahadane, FactorisationNeverRaisesItsObjectiveAndKeepsItsConstraints) {
  const std::vector<float> od = tissue_od(render(kH, kE, 1.2, 0.8, 31));
  const auto& hed = hed_stain_vectors();
  const double w0[2][3] = {{hed[0][0], hed[0][1], hed[0][2]}, {hed[1][0], hed[1][1], hed[1][2]}};
  const SparseNmf f = sparse_nmf_two_stains(od.data(), od.size() / 3, w0);
  ASSERT_GE(f.objective.size(), 2u);
  EXPECT_LE(f.objective.size(), size_t(VahadaneOptions{}.max_iterations)) << "converged";
  for (size_t i = 1; i < f.objective.size(); ++i)
    EXPECT_LE(f.objective[i], f.objective[i - 1] * (1 + 1e-12)) << "iteration " << i;
  EXPECT_LT(f.objective.back(), 0.9 * f.objective.front()) << "it moved from the start";
  for (const auto& row : f.w) {
    double n = 0;
    for (double x : row) EXPECT_GE(x, 0.0), n += x * x;
    EXPECT_LE(std::sqrt(n), 1 + 1e-12);
  }
}

// The sparsity weight pulls each stain a little toward where its pixels lie
// (lambda 0.1: 1.3-3.3 degrees on these images, whose purest pixels are
// exact; Macenko's extremes land within 0.1 there).
TEST(Vahadane, RecoversTheStainsAnImageWasRenderedWith) {
  const Image im = render(kH, kE, 1.2, 0.8, 3);
  const StainMatrix s =
      estimate_stains_vahadane(im.rgb.data(), size_t(im.width) * im.height, "rendered");
  EXPECT_LT(angle_between(s.he[0], kH), 4.0) << "haematoxylin";
  EXPECT_LT(angle_between(s.he[1], kE), 4.0) << "eosin";
  EXPECT_NEAR(s.max_concentration[0], 1.2, 0.12);
  EXPECT_NEAR(s.max_concentration[1], 0.8, 0.08);
  // The other staining, in H, E order too, through the method switch.
  const StainMatrix s2 =
      estimate_stains_with(StainMethod::vahadane, render(kH2, kE2, 0.9, 1.1, 4), "rendered 2");
  EXPECT_LT(angle_between(s2.he[0], kH2), 4.0);
  EXPECT_LT(angle_between(s2.he[1], kE2), 4.0);
}

// What it is for: 2 % of pixels in a colour neither stain explains (blue
// ink, debris) move Macenko's eosin extreme to them; the factorisation,
// fitting every pixel, stays near the stains.
TEST(Vahadane, AFewOffStainPixelsMoveItLessThanMacenkosExtremes) {
  Image im = render(kH, kE, 1.2, 0.8, 3, 160);
  const Vec3 ink = unit({0.2, 0.3, 0.9});
  Rng rng(5);
  for (size_t i = 0; i < im.rgb.size() / 3; ++i)
    if (rng.uniform(0.0, 1.0) < 0.02) {
      const double c = rng.uniform(0.5, 1.5);
      for (int k = 0; k < 3; ++k)
        im.rgb[3 * i + size_t(k)] = intensity_of(float(c * ink[size_t(k)]));
    }
  const StainMatrix v = estimate_stains_with(StainMethod::vahadane, im, "inked");
  const StainMatrix m = estimate_stains_with(StainMethod::macenko, im, "inked");
  EXPECT_LT(angle_between(v.he[1], kE), 8.0);
  EXPECT_GT(angle_between(m.he[1], kE), 15.0) << "the case Vahadane's estimate is chosen for";
  EXPECT_LT(angle_between(v.he[0], kH), 4.0);
}

TEST(Vahadane, NormalisingMapsOneStainingOntoTheOther) {
  // The same tissue under two stainings: the first normalised to the
  // second's Vahadane target gives the second's pixels; kept residual makes
  // self-normalisation exact.
  const Image a = render(kH, kE, 1.2, 0.8, 5), b = render(kH2, kE2, 0.9, 1.1, 5);
  const StainMatrix target = estimate_stains_with(StainMethod::vahadane, b, "b");
  const Image mapped = normalize_stains(a, target, StainRecipe{StainMethod::vahadane, false});
  const double diff = mean_abs_diff(mapped, b);
  EXPECT_LT(diff, 4.0) << "mean absolute difference in 8-bit levels";
  EXPECT_GT(mean_abs_diff(a, b), 4 * diff);
  const StainMatrix own = estimate_stains_with(StainMethod::vahadane, a, "a");
  const Image self = normalize_stains(a, own, StainRecipe{StainMethod::vahadane, true});
  EXPECT_LT(mean_abs_diff(self, a), 0.6);
}

TEST(Vahadane, BlankImagesAreRefusedNamingTheImage) {
  Image white;
  white.width = white.height = 16;
  white.rgb.assign(16 * 16 * 3, 250);
  try {
    estimate_stains_with(StainMethod::vahadane, white, "white.png");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("white.png: too little stained tissue", 0), 0u)
        << e.what();
  }
}

TEST(StainRecipe, NamesAndParsesEachOtherAndRefusesTheRest) {
  for (const std::string& name : stain_recipe_names())
    EXPECT_EQ(StainRecipe::parse(name, "--stain-normalize").name(), name);
  const StainRecipe r = StainRecipe::parse("vahadane-residual", "x");
  EXPECT_EQ(r.method, StainMethod::vahadane);
  EXPECT_TRUE(r.keep_residual);
  for (const char* bad : {"none", "", "Vahadane", "macenko-resid", "reinhard"}) {
    try {
      StainRecipe::parse(bad, "m.safetensors: stain_normalize");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                std::string("m.safetensors: stain_normalize: expected one of macenko, "
                            "macenko-residual, vahadane, vahadane-residual, got '") +
                    bad + "'");
    }
  }
}

}  // namespace
}  // namespace histocnn
