// What every CUDA step shares: the cuDNN and cuBLAS handles (created once per
// backend and warmed up before any pool reserves memory), error checking that
// names the call, and RAII wrappers of cuDNN descriptors.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

namespace histocnn::cuda {

// Throw histocnn::Error "<call> failed: <library message>" — never a bare code.
// cudaErrorMemoryAllocation becomes OutOfMemory where the caller can say more.
void check(cudaError_t status, const char* call);
void check(cudnnStatus_t status, const char* call);
void check(cublasStatus_t status, const char* call);
#define HISTOCNN_CUDA(call) ::histocnn::cuda::check((call), #call)

struct Context {
  Context();  // creates the handles and warms the libraries and kernels up
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  int device = 0;
  std::string device_name;
  size_t device_bytes = 0;
};

template <typename T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Descriptor {
 public:
  Descriptor() { check(Create(&d_), "cudnnCreate*Descriptor"); }
  ~Descriptor() {
    if (d_) Destroy(d_);
  }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  Descriptor(Descriptor&& o) noexcept : d_(o.d_) { o.d_ = nullptr; }
  operator T() const { return d_; }

 private:
  T d_ = nullptr;
};
using TensorDesc =
    Descriptor<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc =
    Descriptor<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Descriptor<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                            cudnnDestroyConvolutionDescriptor>;
using PoolDesc = Descriptor<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor,
                            cudnnDestroyPoolingDescriptor>;
using ActivationDesc = Descriptor<cudnnActivationDescriptor_t, cudnnCreateActivationDescriptor,
                                  cudnnDestroyActivationDescriptor>;

}  // namespace histocnn::cuda
