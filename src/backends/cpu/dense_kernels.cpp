// See dense_kernels.h. dnnl_sgemm is row-major: C[M][N] = op(A) op(B).
#include "backends/cpu/dense_kernels.h"

#include <dnnl.h>

#include <atomic>
#include <string>

#include "backends/cpu/dense_skinny.h"
#include "backends/cpu/kernel_isa.h"
#include "core/error.h"

namespace histocnn::cpu {
namespace {

std::atomic<KernelIsa> dense_cap{KernelIsa::avx512};  // cap_dense (tests, A/B runs)

void sgemm(char transa, char transb, int m, int n, int k, const float* a, int lda, const float* b,
           int ldb, float* c, int ldc) {
  const dnnl_status_t status =
      dnnl_sgemm(transa, transb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  require(status == dnnl_success,
          "dense layer: oneDNN sgemm failed (status " + std::to_string(int(status)) + ")");
}

void bias_relu(int rows, int out, const float* b, bool relu, float* y) {
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      const float v = y[r * out + o] + b[o];
      y[r * out + o] = relu && v < 0.0f ? 0.0f : v;
    }
}

void bias_gradient(int rows, int out, const float* dy, float* db) {
  for (int o = 0; o < out; ++o) db[o] = 0.0f;
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) db[o] += dy[r * out + o];
}

// The version of the skinny kernels a product of `rows` x `in` takes here
// backward (portable: none, sgemm); forward, AVX-512's only
// (dense_skinny_avx2.cpp says why).
KernelIsa skinny_version(int rows, int in) {
  const KernelIsa isa = capped_kernel_isa(dense_cap);
  if (rows > kSkinnyRows || in % kernel_isa_lanes(isa) != 0) return KernelIsa::portable;
  return isa;
}
KernelIsa skinny_forward_version(int rows, int in) {
  const KernelIsa isa = skinny_version(rows, in);
  return isa == KernelIsa::avx512 ? isa : KernelIsa::portable;
}
std::string name_of(KernelIsa isa) {
  return isa == KernelIsa::portable ? "sgemm" : kernel_isa_name(isa);
}

// The skinny kernels of the version this product takes, where it takes one
// (dense_skinny.h); false: sgemm's turn.
bool skinny_forward(int rows, int in, int out, const float* x, const float* w, float* y) {
  return skinny_forward_version(rows, in) == KernelIsa::avx512 &&
         dense_skinny::forward_avx512(rows, in, out, x, w, y);
}
bool skinny_backward(int rows, int in, int out, const float* x, const float* dy, const float* w,
                     float* dw, float* dx) {
  const KernelIsa version = skinny_version(rows, in);
  if (version == KernelIsa::avx512)
    return dense_skinny::backward_avx512(rows, in, out, x, dy, w, dw, dx);
  if (version == KernelIsa::avx2)
    return dense_skinny::backward_avx2(rows, in, out, x, dy, w, dw, dx);
  return false;
}

}  // namespace

DenseVersions dense_versions(int rows, int in) {
  return {name_of(skinny_forward_version(rows, in)), name_of(skinny_version(rows, in))};
}

void cap_dense(const std::string& isa) {
  dense_cap = parse_kernel_isa(isa, "cap_dense");
}

void dense_forward(int rows, int in, int out, const float* x, const float* w, const float* b,
                   bool relu, float* y) {
  if (!skinny_forward(rows, in, out, x, w, y))
    sgemm('N', 'T', rows, out, in, x, in, w, in, y, out);  // y[rows][out] = x w^T
  bias_relu(rows, out, b, relu, y);
}

void dense_backward_weights(int rows, int in, int out, const float* x, const float* dy, float* dw,
                            float* db) {
  sgemm('T', 'N', out, in, rows, dy, out, x, in, dw, in);  // dw[out][in] = dy^T x
  bias_gradient(rows, out, dy, db);
}

void dense_backward_data(int rows, int in, int out, const float* dy, const float* w, float* dx) {
  sgemm('N', 'N', rows, in, out, dy, out, w, in, dx, in);  // dx[rows][in] = dy w
}

void dense_backward(int rows, int in, int out, const float* x, const float* dy, const float* w,
                    float* dw, float* db, float* dx) {
  if (skinny_backward(rows, in, out, x, dy, w, dw, dx)) return bias_gradient(rows, out, dy, db);
  dense_backward_weights(rows, in, out, x, dy, dw, db);
  dense_backward_data(rows, in, out, dy, w, dx);
}

}  // namespace histocnn::cpu
