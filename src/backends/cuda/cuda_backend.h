// CUDA backend: cuDNN convolutions; cuBLAS for the dense layers; own kernels
// for max pooling with the fused ReLU/bias gradient (pool_kernels.h), conv1's
// weight gradient (wgrad_kernels.h), dense bias/ReLU/dropout, softmax
// cross-entropy and the fused Adam update (cuda_kernels.h). The step is a
// dispatcher over the schedule of cuda_schedule.h; every tensor, workspace
// and the optimizer state come from the DeviceContext's memory resource.
//
// Creating the backend creates the cuDNN and cuBLAS handles and runs a tiny
// convolution, GEMM and each own kernel once, so the lazily loaded kernels and
// the libraries' own device memory are in place before a pool reserves its
// share of the device (Theano's users saw handle creation fail under a 98%
// CNMeM reserve). The backend must outlive its steps.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace histocnn {

// The backend of CUDA device `ordinal` (chosen by select_device, which
// throws "no CUDA device: ..." without one); it makes the device current
// before creating its handles and each step.
std::unique_ptr<Backend> make_cuda_backend(int ordinal);
// "cuDNN 9.x.y, CUDA runtime 13.0 (built against 13.0)": the libraries loaded
// (no device needed).
std::string cuda_library_versions();

}  // namespace histocnn
