// Gradients summed across processes on their GPUs with NCCL (one GPU per
// process): ncclAllReduce over the flat device gradient vector, on the step's
// stream, so it orders after backward and before the update without a host
// synchronisation (and is captured into a CUDA graph like the rest).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "dist/communicator.h"
#include "memory/memory_resource.h"

namespace histocnn {

using GradientReducer = std::function<void(float* gradients, int64_t count, StreamHandle stream)>;

// Selects this process's GPU (its local rank, modulo the devices present) and
// creates the NCCL communicator (its id broadcast over `comm`). Collective:
// every rank calls it. Throws histocnn::Error naming the failing call.
GradientReducer make_nccl_reducer(Communicator& comm);

}  // namespace histocnn
