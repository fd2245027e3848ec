// Vahadane's stain estimate (Vahadane et al. 2016, "Structure-preserving
// color normalization and sparse stain separation for histological images",
// IEEE TMI 35(8)): an image's two stain vectors are the dictionary of a
// sparse non-negative factorisation of its tissue's optical density,
//
//   min over W, H of  1/2 ||V - H W||^2 + lambda * sum(H)
//   subject to        W >= 0, H >= 0, ||w_k|| <= 1,
//
// V: n x 3 OD rows (tissue pixels), W: 2 x 3 stain rows, H: n x 2 stain
// concentrations. Sparsity says what Macenko's angle extremes only assume:
// most pixels hold mostly one stain (nuclei, stroma). staintools solves it
// with SPAMS' trainDL (lambda 0.1); here the two blocks are minimised in turn,
// each exactly (H pixel by pixel in closed form, W one stain row at a time by
// projection), so the objective never rises and the result depends only on
// the pixels: no random start. The start is Ruifrok & Johnston's H and E.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "data/stain.h"

namespace histocnn {

struct VahadaneOptions {
  float od_threshold = 0.15f;  // tissue: mean OD at least this (as MacenkoOptions)
  double lambda = 0.1;         // sparsity weight (staintools' default)
  size_t max_pixels = 40000;   // tissue pixels factorised, evenly strided
  int max_iterations = 300;
  double tolerance = 1e-7;  // stop once an iteration lowers the objective by less (relative)
  int min_tissue_pixels = 100;
};

// The non-negative lasso of one pixel for two stains:
//   argmin over h >= 0 of 1/2 h^T G h - (r - lambda)^T h,
// G = W W^T (the stains' Gram matrix), r = W v (v the pixel's OD). The
// minimum of this convex quadratic over the quadrant is its unconstrained
// minimum when that lies inside, else the lower of the two edges' minima;
// each is solved in closed form.
void nonneg_lasso_two(const double gram[2][2], const double r[2], double lambda, double h[2]);

struct SparseNmf {
  double w[2][3];                 // stain rows: non-negative, norm at most 1
  std::vector<double> objective;  // at the start, then after each iteration: never rises
};

// Factorises `n` OD rows (3 floats each) from the starting stains `w0`.
// requires: n >= 1, w0 non-negative with non-zero rows.
SparseNmf sparse_nmf_two_stains(const float* od, size_t n, const double w0[2][3],
                                const VahadaneOptions& options = {});

// Estimates the stain matrix of the tissue pixels of `rgb` (3 bytes per pixel,
// every `stride`-th used): H and E as the factorisation's rows (H absorbs
// more red), unit length, and the concentration range as Macenko's estimate
// computes it. Throws naming `what` when there is too little tissue or the
// factorisation leaves a stain empty.
StainMatrix estimate_stains_vahadane(const uint8_t* rgb, size_t pixels, const std::string& what,
                                     const VahadaneOptions& options = {}, size_t stride = 1);

}  // namespace histocnn
