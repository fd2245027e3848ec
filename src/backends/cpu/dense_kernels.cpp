// See dense_kernels.h. dnnl_sgemm is row-major: C[M][N] = op(A) op(B).
#include "backends/cpu/dense_kernels.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "backends/cpu/avx512.h"
#include "backends/cpu/kernel_isa.h"
#include "core/error.h"

namespace histocnn::cpu {
namespace {

std::atomic<bool> sgemm_only{false};

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

#if HISTOCNN_HAS_AVX512_CODE
#pragma GCC diagnostic push  // see avx512.h
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// Backward's unit of work among the threads: columns of `in`, in vectors of 16.
constexpr int64_t kBlockVectors = 16;
// Forward reads each weight row's block once per block: long blocks make long
// streams from DRAM (the step's case); x's block (rows x 4 KB) stays near L1.
constexpr int64_t kForwardBlock = 64;

// Backward over the columns [16 v0, 16 v1) (one block): dw's and dx's columns
// there, each element summed in a fixed order (dw over the rows, dx over the
// outputs), so the result does not depend on the threads. The outputs go in
// groups of kOutputGroup: x's and dx's rows stay in registers for a group,
// and a group reads that many weight rows' contiguous blocks (one stream
// each; all 64 at once outran the prefetchers).
constexpr int kOutputGroup = 8;
template <int R>
HISTOCNN_AVX512 void backward_columns(int in, int out, const float* x, const float* dy,
                                      const float* w, float* dw, float* dx, int64_t v0,
                                      int64_t v1) {
  __m512 xs[R], acc[R];
  for (int first = 0; first < out; first += kOutputGroup) {
    const int last = std::min(out, first + kOutputGroup);
    for (int64_t v = v0; v < v1; ++v) {
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        xs[r] = _mm512_loadu_ps(x + int64_t(r) * in + 16 * v);
        acc[r] = first == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(dx + int64_t(r) * in + 16 * v);
      }
      for (int o = first; o < last; ++o) {
        const __m512 wv = _mm512_loadu_ps(w + int64_t(o) * in + 16 * v);
        __m512 d = _mm512_setzero_ps();
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const __m512 g = _mm512_set1_ps(dy[r * out + o]);
          d = _mm512_fmadd_ps(g, xs[r], d);
          acc[r] = _mm512_fmadd_ps(g, wv, acc[r]);
        }
        _mm512_storeu_ps(dw + int64_t(o) * in + 16 * v, d);
      }
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) _mm512_storeu_ps(dx + int64_t(r) * in + 16 * v, acc[r]);
    }
  }
}

// Forward over the same columns: this thread's share of y = x w^T, per row
// and output as 16 lanes, added to `partial` ([R][out][16]).
template <int R>
HISTOCNN_AVX512 void forward_columns(int in, int out, const float* x, const float* w,
                                     float* partial, int64_t v0, int64_t v1) {
  for (int o = 0; o < out; ++o) {
    __m512 acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) acc[r] = _mm512_loadu_ps(partial + (int64_t(r) * out + o) * 16);
    for (int64_t v = v0; v < v1; ++v) {
      const __m512 wv = _mm512_loadu_ps(w + int64_t(o) * in + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r)
        acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(x + int64_t(r) * in + 16 * v), wv, acc[r]);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(partial + (int64_t(r) * out + o) * 16, acc[r]);
  }
}

// Output i of y from the threads' partials ([threads][outputs][16]): the
// threads' 16-lane vectors added in thread order, then the lanes.
HISTOCNN_AVX512 float sum_partials(const float* partials, int threads, int outputs, int i) {
  __m512 acc = _mm512_loadu_ps(partials + int64_t(i) * 16);
  for (int t = 1; t < threads; ++t)
    acc = _mm512_add_ps(acc, _mm512_loadu_ps(partials + (int64_t(t) * outputs + i) * 16));
  return _mm512_reduce_add_ps(acc);
}

template <int R>
void backward_skinny(int in, int out, const float* x, const float* dy, const float* w, float* dw,
                     float* dx) {
  const int64_t vectors = in / 16, blocks = (vectors + kBlockVectors - 1) / kBlockVectors;
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b)
    backward_columns<R>(in, out, x, dy, w, dw, dx, b * kBlockVectors,
                        std::min(vectors, (b + 1) * kBlockVectors));
}

// Each thread sums a contiguous run of blocks into its own partial; then
// each output adds the threads' partials in order (reproducible for a thread
// count), vectorised and the outputs shared among the threads. Added one
// value at a time on one thread, 16 threads' partials of fc1's 640 outputs
// at batch 10 took 0.071 ms, against 0.012 ms vectorised (a standalone loop,
// one core of the 2-core AMD VM, 2026-12-04); fc1 forward was 0.37 ms of
// the 16-thread step there (cpu-scaling-16core.md).
template <int R>
void forward_skinny(int in, int out, const float* x, const float* w, float* y) {
  const int64_t vectors = in / 16, blocks = (vectors + kForwardBlock - 1) / kForwardBlock;
  const int threads = omp_get_max_threads();
  thread_local std::vector<float> partial;  // kept: a steady step allocates nothing
  partial.assign(size_t(threads) * R * out * 16, 0.0f);
  float* const partials = partial.data();  // the caller's: thread_local names another per thread
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t first = blocks * t / team, last = blocks * (t + 1) / team;
    float* mine = partials + size_t(t) * R * out * 16;
    for (int64_t b = first; b < last; ++b)
      forward_columns<R>(in, out, x, w, mine, b * kForwardBlock,
                         std::min(vectors, (b + 1) * kForwardBlock));
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int i = 0; i < R * out; ++i) y[i] = sum_partials(partials, threads, R * out, i);
}

#pragma GCC diagnostic pop

// One instantiation per row count: the rows' registers are named at compile time.
template <template <int> class Kernel, int R = 1>
bool dispatch_rows(int rows, auto&&... args) {
  if constexpr (R > kSkinnyRows) {
    return false;
  } else {
    if (rows == R) return Kernel<R>::run(args...), true;
    return dispatch_rows<Kernel, R + 1>(rows, args...);
  }
}
template <int R>
struct Backward {
  static void run(int in, int out, const float* x, const float* dy, const float* w, float* dw,
                  float* dx) {
    backward_skinny<R>(in, out, x, dy, w, dw, dx);
  }
};
template <int R>
struct Forward {
  static void run(int in, int out, const float* x, const float* w, float* y) {
    forward_skinny<R>(in, out, x, w, y);
  }
};

bool skinny(int rows, int in) {
  return !sgemm_only && rows <= kSkinnyRows && in % 16 == 0 &&
         machine_kernel_isa() == KernelIsa::avx512;
}
#else
bool skinny(int, int) {
  return false;
}
#endif

}  // namespace

bool dense_skinny(int rows, int in) {
  return skinny(rows, in);
}

void set_sgemm_dense(bool sgemm) {
  sgemm_only = sgemm;
}

void dense_forward(int rows, int in, int out, const float* x, const float* w, const float* b,
                   bool relu, float* y) {
#if HISTOCNN_HAS_AVX512_CODE
  if (!skinny(rows, in) || !dispatch_rows<Forward>(rows, in, out, x, w, y))
#endif
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
#if HISTOCNN_HAS_AVX512_CODE
  if (skinny(rows, in) && dispatch_rows<Backward>(rows, in, out, x, dy, w, dw, dx)) {
    bias_gradient(rows, out, dy, db);
    return;
  }
#endif
  dense_backward_weights(rows, in, out, x, dy, dw, db);
  dense_backward_data(rows, in, out, dy, w, dx);
}

}  // namespace histocnn::cpu
