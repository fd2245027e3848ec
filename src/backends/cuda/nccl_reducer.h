// Gradients summed across processes on their GPUs with NCCL (one GPU per
// process): ncclAllReduce over the flat device gradient vector, on the step's
// stream, so it orders after backward and before the update without a host
// synchronisation (and is captured into a CUDA graph like the rest).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"
#include "dist/communicator.h"
#include "memory/memory_resource.h"

namespace histocnn {

using GradientReducer = std::function<void(float* gradients, int64_t count, StreamHandle stream)>;

// Creates the NCCL communicator on `device` (this process's GPU, from
// select_device; its id broadcast over `comm`). Collective: every rank calls
// it. Throws histocnn::Error naming the failing call.
GradientReducer make_nccl_reducer(Communicator& comm, const Device& device);

}  // namespace histocnn
