// The CPU step's dense layers as three matrix products on oneDNN's sgemm,
// oriented so that the weights (PyTorch's [out][in] row-major order, a view
// of the flat parameter vector) are read or written in rows, plus our own
// bias, ReLU and bias-gradient loops. In place of oneDNN's inner product
// primitives: as fast alone, 0.6 ms of a 40 ms step faster at 200 px, batch
// 10, and simpler (no primitive descriptors or scratchpads;
// docs/results/cpu-dense.md).
//
// Contract: rows >= 1, in >= 1, out >= 1; x is [rows][in], w [out][in], b and
// db [out], y and dy [rows][out], dw [out][in], dx [rows][in], all row-major,
// fp32, not overlapping. Each output is overwritten. Results are reproducible
// for a thread count; the sums follow sgemm's order (not a fixed rule), so
// tests compare them with a double-precision reference by tolerance.
#pragma once

namespace histocnn::cpu {

// y = x w^T + b, then max(y, 0) when `relu`.
void dense_forward(int rows, int in, int out, const float* x, const float* w, const float* b,
                   bool relu, float* y);
// dw = dy^T x; db = the column sums of dy (over the rows, in row order).
void dense_backward_weights(int rows, int in, int out, const float* x, const float* dy, float* dw,
                            float* db);
// dx = dy w.
void dense_backward_data(int rows, int in, int out, const float* dy, const float* w, float* dx);

}  // namespace histocnn::cpu
