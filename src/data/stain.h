// H&E stain operations in optical density (OD = -ln((I + 1) / 256)) space:
//
//  * HED augmentation (Tellez et al. 2018): project OD onto the
//    haematoxylin / eosin / DAB stain vectors of Ruifrok & Johnston (2001),
//    scale and shift each stain's concentration at random, project back.
//    The whole change is linear in OD, od' = od * A + b, so it is applied
//    per pixel as one 3x3 product (`HedJitter`).
//  * Stain normalisation (Macenko et al. 2009): estimate an image's two
//    stain vectors from the extreme angles of its tissue OD in the plane of
//    the two largest principal axes (or by Vahadane's sparse factorisation,
//    data/stain_vahadane.h), its stain concentrations by least squares, and
//    re-render them with a target's vectors and concentration range. The
//    target is estimated from the training images and stored in the model
//    file with the method, so eval, predict and slide normalise exactly as
//    training did.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace histocnn {

// Optical density of an 8-bit value, and back (clamped to 0..255).
float optical_density(uint8_t value);
uint8_t intensity_of(float od);

// The affine OD map of one HED augmentation draw: od' = od * A + b (row vector).
struct HedJitter {
  float a[3][3];
  float b[3];
  // alpha_i = 1 + u, beta_i = v, u, v uniform in [-sigma, sigma] (sigma 0.05
  // is Tellez's "HED-light", 0.2 "HED-strong"), from three draws of each.
  static HedJitter draw(float sigma, const float alpha_u[3], const float beta_u[3]);
  // The identity map, for tests.
  static HedJitter identity();
  void apply(const float od_in[3], float od_out[3]) const;  // clamps od' at 0
};

// HED jitter on 8-bit pixels without a per-pixel exponential. The transmitted
// fraction of channel c is t_c = exp(-max(0, sum_k od_k a_kc + b_c)), each od_k
// one of 256 values (`od_of`). As exp(-b_c) * prod_k exp(-od_k a_kc) it is
// three table lookups and products: an example 2.8x faster at 64 px and 3.8x
// at 200 px (bench_loader). The max(0, .) becomes min(1, .), which a caller
// clamping to [0, 1] already applies. Exact in real arithmetic; in float
// within a few ulp of each factor (tested against HedJitter::apply). build()
// refuses (false) where a factor could overflow or underflow: summed
// exponents of 60 or more (at most ~33 for sigma <= 1); the caller then
// computes per pixel.
struct HedTables {
  float factor[3][3][256];  // [output channel][input channel][value]
  float bias[3];            // exp(-b_c)

  bool build(const HedJitter& hed, const float (&od_of)[3][256]);
  // t_c before the min(1, .), for a pixel's three channel values.
  float transmitted(int c, const uint8_t* rgb) const {
    return bias[c] * factor[c][0][rgb[0]] * factor[c][1][rgb[1]] * factor[c][2][rgb[2]];
  }
};

// Ruifrok & Johnston's stain vectors (rows: H, E, DAB; unit length in OD).
const std::array<std::array<float, 3>, 3>& hed_stain_vectors();

// Macenko's estimate for one image (or pooled pixels): H and E unit vectors in
// OD and the 99th percentile of each stain's concentration.
struct StainMatrix {
  float he[2][3] = {{0, 0, 0}, {0, 0, 0}};  // rows: haematoxylin, eosin
  float max_concentration[2] = {0, 0};
  std::string text() const;  // 8 numbers, comma separated (%.9g)
  static StainMatrix parse(const std::string& text, const std::string& where);
};

struct MacenkoOptions {
  float od_threshold = 0.15f;     // pixels whose mean OD is below are background
  float angle_percentile = 1.0f;  // robust extremes: 1st and 99th percentile angles
  int min_tissue_pixels = 100;
};

// Estimates the stain matrix from the tissue pixels of `rgb` (3 bytes per
// pixel, `pixels` of them, every `stride`-th used). Throws naming `what`
// when there is too little tissue.
StainMatrix estimate_stains(const uint8_t* rgb, size_t pixels, const std::string& what,
                            const MacenkoOptions& options = {}, size_t stride = 1);
StainMatrix estimate_stains(const Image& image, const std::string& what,
                            const MacenkoOptions& options = {});

// Sets s.max_concentration from unit vectors s.he: the 99th percentile of
// each stain's least-squares concentration over every sampled pixel
// (background included, as Macenko's reference implementation does). Both
// estimators use it, so they differ only in the vectors. Throws naming
// `what` when a range is not positive.
void set_concentration_range(StainMatrix& s, const uint8_t* rgb, size_t pixels, size_t stride,
                             const std::string& what);

// Which estimator finds an image's two stain vectors: Macenko's angle
// extremes, or Vahadane's sparse non-negative factorisation
// (data/stain_vahadane.h).
enum class StainMethod { macenko, vahadane };

// How images are normalised (train --stain-normalize, recorded in the model
// as trained.stain_normalize): the estimator, and whether the optical density
// the two stains do not explain is kept.
struct StainRecipe {
  StainMethod method = StainMethod::macenko;
  bool keep_residual = false;
  std::string name() const;  // "macenko", "vahadane-residual", ...
  // The recipe `name` names; anything else (none included) throws naming `where`.
  static StainRecipe parse(const std::string& name, const std::string& where);
};
// Every name StainRecipe::parse accepts.
const std::vector<std::string>& stain_recipe_names();
StainMethod parse_stain_method(const std::string& name, const std::string& where);
const char* stain_method_name(StainMethod method);

// The estimate of `method` (Macenko's or Vahadane's default options).
StainMatrix estimate_stains_with(StainMethod method, const uint8_t* rgb, size_t pixels,
                                 const std::string& what, size_t stride = 1);
StainMatrix estimate_stains_with(StainMethod method, const Image& image, const std::string& what);

// Re-renders `image` (whose own stains are `source`) with the target's stain
// vectors and concentration range. Macenko's method keeps only the two stains;
// with `keep_residual` the optical density outside the source's H-E plane
// (what the two-stain model does not explain) is added back unchanged, so an
// image normalised to its own stains is itself.
Image normalize_stains(const Image& image, const StainMatrix& source, const StainMatrix& target,
                       bool keep_residual = false);
// Estimates the image's stains as the recipe says and normalises it; an image
// with too little tissue to estimate (a blank tile) is returned unchanged.
Image normalize_stains(const Image& image, const StainMatrix& target,
                       const StainRecipe& recipe = {});

// Largest-first eigen decomposition of a symmetric 3x3 matrix (Jacobi).
void symmetric_eigen3(const double m[3][3], double values[3], double vectors[3][3]);

}  // namespace histocnn
