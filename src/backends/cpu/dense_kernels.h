// The CPU step's dense layers: the weights in PyTorch's [out][in] row-major
// order (a view of the flat parameter vector), our own bias, ReLU and
// bias-gradient loops, and the products
// * on oneDNN's sgemm, oriented so the weights are read or written in rows
//   (in place of oneDNN's inner product: as fast alone, 0.6 ms of a 40 ms step
//   faster at 200 px, batch 10; docs/results/cpu-dense.md);
// * for a batch of at most kSkinnyRows rows (the paper's batch 10), on our
//   kernels split over the weights' columns (dense_skinny.h): the backward
//   pass makes dw and dx in one pass over w, and neither direction packs a
//   matrix as sgemm does (fc1 there is bound by memory:
//   docs/results/cpu-dense.md). An AVX-512 version where the CPU and
//   oneDNN's ISA have it (kernel_isa.h) and `in` is a multiple of 16; an
//   AVX2 backward where they have AVX2 and `in` is a multiple of 8 (forward
//   stays on sgemm there: it was as fast, dense_skinny_avx2.cpp).
//
// Contract: rows >= 1, in >= 1, out >= 1; x is [rows][in], w [out][in], b and
// db [out], y and dy [rows][out], dw [out][in], dx [rows][in], all row-major,
// fp32, not overlapping. Each output is overwritten. Results are reproducible
// for a thread count (the skinny backward's for any: each element is summed
// in one fixed order); the sums follow sgemm's or the kernels' order, so tests
// compare them with a double-precision reference by tolerance.
#pragma once

#include <string>

namespace histocnn::cpu {

constexpr int kSkinnyRows = 12;  // rows' registers: 2 x 12 + 3 of 32 in backward

// y = x w^T + b, then max(y, 0) when `relu`.
void dense_forward(int rows, int in, int out, const float* x, const float* w, const float* b,
                   bool relu, float* y);
// dw = dy^T x, db = the column sums of dy (over the rows, in row order) and
// dx = dy w: the step's backward pass.
void dense_backward(int rows, int in, int out, const float* x, const float* dy, const float* w,
                    float* dw, float* db, float* dx);
// The sgemm halves of dense_backward, on their own (tests and bench_dense).
void dense_backward_weights(int rows, int in, int out, const float* x, const float* dy, float* dw,
                            float* db);
void dense_backward_data(int rows, int in, int out, const float* dy, const float* w, float* dx);

// What a product of `rows` x `in` runs on here, in each direction: "avx512"
// or "avx2" (the skinny kernels) or "sgemm".
struct DenseVersions {
  std::string forward, backward;
};
DenseVersions dense_versions(int rows, int in);
// Tests and A/B runs: the skinny kernels at most at this version ("avx512",
// the default: the machine's best; "avx2"; "portable": sgemm at every
// batch, bench_epoch --sgemm-dense).
void cap_dense(const std::string& isa);

}  // namespace histocnn::cpu
