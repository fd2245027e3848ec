// See dense_kernels.h. dnnl_sgemm is row-major: C[M][N] = op(A) op(B).
#include "backends/cpu/dense_kernels.h"

#include <dnnl.h>

#include <string>

#include "core/error.h"

namespace histocnn::cpu {
namespace {

void sgemm(char transa, char transb, int m, int n, int k, const float* a, int lda, const float* b,
           int ldb, float* c, int ldc) {
  const dnnl_status_t status =
      dnnl_sgemm(transa, transb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  require(status == dnnl_success,
          "dense layer: oneDNN sgemm failed (status " + std::to_string(int(status)) + ")");
}

}  // namespace

void dense_forward(int rows, int in, int out, const float* x, const float* w, const float* b,
                   bool relu, float* y) {
  sgemm('N', 'T', rows, out, in, x, in, w, in, y, out);  // y[rows][out] = x w^T
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      const float v = y[r * out + o] + b[o];
      y[r * out + o] = relu && v < 0.0f ? 0.0f : v;
    }
}

void dense_backward_weights(int rows, int in, int out, const float* x, const float* dy, float* dw,
                            float* db) {
  sgemm('T', 'N', out, in, rows, dy, out, x, in, dw, in);  // dw[out][in] = dy^T x
  for (int o = 0; o < out; ++o) db[o] = 0.0f;
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) db[o] += dy[r * out + o];
}

void dense_backward_data(int rows, int in, int out, const float* dy, const float* w, float* dx) {
  sgemm('N', 'N', rows, in, out, dy, out, w, in, dx, in);  // dx[rows][in] = dy w
}

}  // namespace histocnn::cpu
