// Known-answer tests of the stain operations (data/stain.h): images rendered
// from known stain vectors and concentrations, so the right answer is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/stain.h"
#include "stain_images.h"

namespace histocnn {
namespace {
using namespace stain_images;

TEST(Stain, OpticalDensityRoundTripsEveryByte) {
  for (int v = 0; v < 256; ++v) EXPECT_EQ(intensity_of(optical_density(uint8_t(v))), v);
  EXPECT_FLOAT_EQ(optical_density(255), 0.0f);
  EXPECT_EQ(intensity_of(-1.0f), 255);  // clamped
  EXPECT_EQ(intensity_of(100.0f), 0);
}

TEST(Stain, SymmetricEigenKnownAnswer) {
  // Eigenvalues of [[2,1,0],[1,2,0],[0,0,5]] are 5, 3, 1.
  const double m[3][3] = {{2, 1, 0}, {1, 2, 0}, {0, 0, 5}};
  double values[3], vectors[3][3];
  symmetric_eigen3(m, values, vectors);
  EXPECT_NEAR(values[0], 5, 1e-12);
  EXPECT_NEAR(values[1], 3, 1e-12);
  EXPECT_NEAR(values[2], 1, 1e-12);
  EXPECT_NEAR(std::abs(vectors[0][2]), 1, 1e-12);
  EXPECT_NEAR(std::abs(vectors[1][0]), std::sqrt(0.5), 1e-12);
  EXPECT_NEAR(vectors[1][0] * vectors[1][1], 0.5, 1e-12);  // (1,1)/sqrt2 up to sign
  for (int i = 0; i < 3; ++i)                              // M v = lambda v
    for (int r = 0; r < 3; ++r) {
      double mv = 0;
      for (int k = 0; k < 3; ++k) mv += m[r][k] * vectors[i][k];
      EXPECT_NEAR(mv, values[i] * vectors[i][r], 1e-12);
    }
}

TEST(Stain, HedJitterIsIdentityAtZeroAndScalesOneStain) {
  const float zeros[3] = {0, 0, 0};
  const HedJitter none = HedJitter::draw(0.3f, zeros, zeros);  // alpha 1, beta 0
  const auto& hed = hed_stain_vectors();
  const float od[3] = {0.4f, 0.9f, 0.3f};
  float out[3];
  none.apply(od, out);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(out[c], od[c], 1e-6);
  // Pure haematoxylin (concentration 0.8), H scaled by 1 + 0.5 * 0.2:
  // the result is haematoxylin at 0.88 plus eosin's shift (0.2 * 0.25).
  const float alpha_u[3] = {0.5f, 0.0f, 0.0f}, beta_u[3] = {0.0f, 0.25f, 0.0f};
  const HedJitter j = HedJitter::draw(0.2f, alpha_u, beta_u);
  float pure_h[3];
  for (int c = 0; c < 3; ++c) pure_h[c] = 0.8f * hed[0][c];
  j.apply(pure_h, out);
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(out[c], 0.88f * hed[0][c] + 0.05f * hed[1][c], 1e-5);
}

// The tables give each pixel what HedJitter::apply and an exponential give,
// up to float rounding, over random draws at the strongest allowed sigma; and
// refuse draws whose factors could leave float's range.
TEST(Stain, HedTablesMatchThePerPixelFormula) {
  float od_of[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) od_of[c][v] = -std::log((v + 1.0f) / 256.0f);
  Rng rng(7);
  for (float sigma : {0.05f, 0.2f, 1.0f}) {
    for (int draw = 0; draw < 20; ++draw) {
      float alpha_u[3], beta_u[3];
      for (float& u : alpha_u) u = float(rng.uniform(-1, 1));
      for (float& u : beta_u) u = float(rng.uniform(-1, 1));
      const HedJitter hed = HedJitter::draw(sigma, alpha_u, beta_u);
      HedTables tables;
      ASSERT_TRUE(tables.build(hed, od_of)) << "sigma " << sigma;
      for (int pixel = 0; pixel < 2000; ++pixel) {
        const uint8_t rgb[3] = {uint8_t(rng.below(256)), uint8_t(rng.below(256)),
                                uint8_t(rng.below(256))};
        const float in[3] = {od_of[0][rgb[0]], od_of[1][rgb[1]], od_of[2][rgb[2]]};
        float od[3];
        hed.apply(in, od);
        for (int c = 0; c < 3; ++c) {
          const double want = std::exp(-double(od[c]));  // <= 1: apply clamps od' at 0
          const double got = std::min(1.0, double(tables.transmitted(c, rgb)));
          ASSERT_NEAR(got, want, 2e-6 * want + 1e-7)
              << "sigma " << sigma << ", channel " << c << ", rgb " << int(rgb[0]) << " "
              << int(rgb[1]) << " " << int(rgb[2]);
        }
      }
    }
  }
  const float far[3] = {30, 30, 30};
  EXPECT_FALSE(HedTables().build(HedJitter::draw(30.0f, far, far), od_of))
      << "factors beyond float's range: per pixel instead";
}

// augment_to_chw through the tables, per pixel on request (the A/B switch)
// and per pixel where the tables refuse (sigma 30) gives the formula's image.
TEST(Stain, HedAugmentationEqualsTheFormulaOnBothPaths) {
  const Image im = render(kH, kE, 1.0, 1.0, 11, 24);
  for (auto [sigma, per_pixel] : {std::pair{0.2f, false}, {0.2f, true}, {30.0f, false}}) {
    AugmentOptions options;
    options.hed_jitter = sigma;
    std::vector<float> got(3 * 24 * 24);
    set_per_pixel_hed(per_pixel);
    augment_to_chw(im.rgb.data(), 24, 24, options, 5, got.data());
    set_per_pixel_hed(false);
    Rng rng(5);  // the draws augment_to_chw makes, in its order
    float alpha_u[3], beta_u[3];
    for (float& u : alpha_u) u = float(rng.uniform(-1, 1));
    for (float& u : beta_u) u = float(rng.uniform(-1, 1));
    const HedJitter hed = HedJitter::draw(sigma, alpha_u, beta_u);
    for (int i = 0; i < 24 * 24; ++i) {
      const uint8_t* p = im.rgb.data() + 3 * i;
      float in[3], od[3];
      for (int c = 0; c < 3; ++c) in[c] = -std::log((p[c] + 1.0f) / 256.0f);
      hed.apply(in, od);
      for (int c = 0; c < 3; ++c) {
        const double want = std::clamp((256.0 * std::exp(-double(od[c])) - 1.0) / 255.0, 0.0, 1.0);
        ASSERT_NEAR(got[size_t(c) * 24 * 24 + i], want, 1e-5)
            << "sigma " << sigma << ", pixel " << i;
      }
    }
  }
}

TEST(Stain, MacenkoRecoversTheStainsAnImageWasRenderedWith) {
  const Image im = render(kH, kE, 1.2, 0.8, 3);
  const StainMatrix s = estimate_stains(im, "rendered");
  EXPECT_LT(angle_between(s.he[0], kH), 3.0) << "haematoxylin";
  EXPECT_LT(angle_between(s.he[1], kE), 3.0) << "eosin";
  // 99th percentile of the concentrations: close to the maxima used.
  EXPECT_NEAR(s.max_concentration[0], 1.2, 0.12);
  EXPECT_NEAR(s.max_concentration[1], 0.8, 0.08);
  // The other staining, and its vectors come out in H, E order too.
  const StainMatrix s2 = estimate_stains(render(kH2, kE2, 0.9, 1.1, 4), "rendered 2");
  EXPECT_LT(angle_between(s2.he[0], kH2), 3.0);
  EXPECT_LT(angle_between(s2.he[1], kE2), 3.0);
}

TEST(Stain, NormalisingMapsOneStainingOntoTheOther) {
  // The same tissue (same concentrations) under two stainings: normalising
  // the first to the second's matrix gives the second's pixels.
  const Image a = render(kH, kE, 1.2, 0.8, 5), b = render(kH2, kE2, 0.9, 1.1, 5);
  const StainMatrix sa = estimate_stains(a, "a"), sb = estimate_stains(b, "b");
  const Image mapped = normalize_stains(a, sb);
  const double diff = mean_abs_diff(mapped, b);
  EXPECT_LT(diff, 4.0) << "mean absolute difference in 8-bit levels";
  EXPECT_GT(mean_abs_diff(a, b), 4 * diff) << "the stainings differed to begin with";
  // An image normalised to its own stains is (nearly) unchanged.
  EXPECT_LT(mean_abs_diff(normalize_stains(a, sa, sa), a), 1.5);
}

TEST(Stain, KeepingTheResidualMakesSelfNormalisationExactAndMovesOnlyTheStains) {
  // An image with a third, unmodelled absorber (a grey tint in every pixel):
  // Macenko's reconstruction drops it, keep_residual carries it through.
  Image im = render(kH, kE, 1.2, 0.8, 11);
  for (auto& v : im.rgb) v = uint8_t(std::max(0, int(v) - 25));
  const StainMatrix s = estimate_stains(im, "tinted");
  EXPECT_LT(mean_abs_diff(normalize_stains(im, s, s, true), im), 0.6);
  EXPECT_GT(mean_abs_diff(normalize_stains(im, s, s, false), im), 2.0)
      << "the plain method loses the tint (what keep_residual is for)";
  // To another target: the stains change, the residual stays.
  const StainMatrix other = estimate_stains(render(kH2, kE2, 0.9, 1.1, 12), "other");
  const Image moved = normalize_stains(im, s, other, true);
  EXPECT_GT(mean_abs_diff(moved, im), 4.0);
}

TEST(Stain, BlankImagesAreRefusedOrLeftAlone) {
  Image white;
  white.width = white.height = 16;
  white.rgb.assign(16 * 16 * 3, 250);
  try {
    estimate_stains(white, "white.png");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("white.png: too little stained tissue"), std::string::npos)
        << e.what();
  }
  const StainMatrix target = estimate_stains(render(kH, kE, 1, 1, 6), "target");
  EXPECT_EQ(normalize_stains(white, target).rgb, white.rgb);
}

TEST(Stain, MatrixTextRoundTripsAndBadTextIsNamed) {
  const StainMatrix s = estimate_stains(render(kH, kE, 1.2, 0.8, 7), "x");
  const StainMatrix t = StainMatrix::parse(s.text(), "m.safetensors");
  for (int r = 0; r < 2; ++r) {
    for (int c = 0; c < 3; ++c) EXPECT_EQ(s.he[r][c], t.he[r][c]);
    EXPECT_EQ(s.max_concentration[r], t.max_concentration[r]);
  }
  for (const char* bad : {"", "1,2,3", "0.6,0.7,0.3,0.1,0.9,0.1,1,1",  // not unit vectors
                          "0.5626,0.7201,0.4062,0.2159,0.8012,0.5581,1,-1", "nan,0,0,0,1,0,1,1"}) {
    try {
      StainMatrix::parse(bad, "m.safetensors");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("m.safetensors: bad stain matrix", 0), 0u) << e.what();
    }
  }
}

TEST(Stain, BackgroundMapCountsLikeBruteForce) {
  Image im = render(kH, kE, 1.0, 1.0, 8, 40);
  for (int y = 5; y < 25; ++y)  // a white block
    for (int x = 10; x < 30; ++x)
      for (int c = 0; c < 3; ++c) im.row(y)[3 * x + c] = 240;
  const BackgroundMap map(im);
  Rng rng(9);
  for (int trial = 0; trial < 200; ++trial) {
    const int w = 1 + int(rng.below(40)), h = 1 + int(rng.below(40));
    const int x = int(rng.below(uint64_t(41 - w))), y = int(rng.below(uint64_t(41 - h)));
    int count = 0;
    for (int yy = y; yy < y + h; ++yy)
      for (int xx = x; xx < x + w; ++xx) count += is_background(im.row(yy) + 3 * xx) ? 1 : 0;
    EXPECT_FLOAT_EQ(map.fraction(x, y, w, h), float(count) / float(w * h));
  }
  EXPECT_FLOAT_EQ(map.fraction(10, 5, 20, 20), 1.0f);
  EXPECT_THROW(map.fraction(30, 30, 20, 20), Error);
}

TEST(Stain, HedAugmentationIsSeededAndMildAtSmallSigma) {
  const Image im = render(kH, kE, 1.0, 1.0, 10, 16);
  AugmentOptions hed;
  hed.hed_jitter = 0.05f;
  std::vector<float> a(3 * 256), b(3 * 256), plain(3 * 256), other(3 * 256);
  augment_to_chw(im.rgb.data(), 16, 16, hed, 1, a.data());
  augment_to_chw(im.rgb.data(), 16, 16, hed, 1, b.data());
  augment_to_chw(im.rgb.data(), 16, 16, hed, 2, other.data());
  augment_to_chw(im.rgb.data(), 16, 16, {}, 1, plain.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  double diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::abs(a[i] - plain[i])));
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(diff, 0.2) << "sigma 0.05 changes colours by a few percent";
  // Tiny sigma: the HED path reproduces the plain conversion.
  hed.hed_jitter = 1e-7f;
  augment_to_chw(im.rgb.data(), 16, 16, hed, 1, a.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], plain[i], 1e-5);
}

}  // namespace
}  // namespace histocnn
