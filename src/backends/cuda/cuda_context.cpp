#include "backends/cuda/cuda_context.h"

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_kernels.h"
#include "core/error.h"

namespace histocnn::cuda {

void check(cudaError_t status, const char* call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so later calls do not report it
  fail(std::string(call) + " failed: " + cudaGetErrorString(status) + " (" +
       cudaGetErrorName(status) + ")");
}

void check(cudnnStatus_t status, const char* call) {
  if (status != CUDNN_STATUS_SUCCESS)
    fail(std::string(call) + " failed: " + cudnnGetErrorString(status));
}

void check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail(std::string(call) + " failed: " + cublasGetStatusString(status));
}

Context::Context() {
  HISTOCNN_CUDA(cudaGetDevice(&device));
  cudaDeviceProp prop{};
  HISTOCNN_CUDA(cudaGetDeviceProperties(&prop, device));
  device_name = prop.name;
  device_bytes = prop.totalGlobalMem;
  HISTOCNN_CUDA(cudnnCreate(&cudnn));
  HISTOCNN_CUDA(cublasCreate(&cublas));
  // Warm-up: load the libraries' and our kernels now (lazy module loading
  // would otherwise load them at the first step, inside a pool's reserve).
  float* scratch = nullptr;
  HISTOCNN_CUDA(cudaMalloc(&scratch, 64 * sizeof(float)));
  launch_fill(scratch, 1.0f, 64, nullptr);
  const float one = 1, zero = 0;
  HISTOCNN_CUDA(cublasSgemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, scratch, 4,
                            scratch + 16, 4, &zero, scratch + 32, 4));
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 4, 4));
  HISTOCNN_CUDA(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 1, 1, 3, 3));
  HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 2, 2));
  HISTOCNN_CUDA(cudnnSetConvolution2dDescriptor(conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT));
  HISTOCNN_CUDA(cudnnConvolutionForward(cudnn, &one, x, scratch, w, scratch + 16, conv,
                                        CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero,
                                        y, scratch + 32));
  HISTOCNN_CUDA(cudaDeviceSynchronize());
  HISTOCNN_CUDA(cudaFree(scratch));
  check_launch("warm-up");
}

Context::~Context() {
  if (cublas) cublasDestroy(cublas);
  if (cudnn) cudnnDestroy(cudnn);
}

}  // namespace histocnn::cuda

namespace histocnn {

std::string cuda_library_versions() {
  const size_t cudnn = cudnnGetVersion();  // 90100: 9.1.0
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  auto dotted = [](int v) {
    return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
  };
  return "cuDNN " + std::to_string(cudnn / 10000) + "." + std::to_string(cudnn % 10000 / 100) +
         "." + std::to_string(cudnn % 100) + ", CUDA runtime " + dotted(runtime) +
         " (built against " + dotted(CUDART_VERSION) + ")";
}

}  // namespace histocnn
