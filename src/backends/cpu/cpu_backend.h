// CPU backend: oneDNN primitives for convolution, pooling, ReLU and inner
// product, forward and backward; OpenMP threads bounded by --threads.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace histocnn {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace histocnn
