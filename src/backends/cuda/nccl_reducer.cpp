#include "backends/cuda/nccl_reducer.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include "backends/cuda/cuda_context.h"
#include "core/error.h"
#include "memory/cuda_resources.h"

namespace histocnn {
namespace {

void check_nccl(ncclResult_t status, const char* call) {
  if (status != ncclSuccess) fail(std::string(call) + " failed: " + ncclGetErrorString(status));
}

struct NcclComm {
  ncclComm_t comm = nullptr;
  ~NcclComm() {
    if (comm) ncclCommDestroy(comm);
  }
};

}  // namespace

GradientReducer make_nccl_reducer(Communicator& comm, const Device& device) {
  use_cuda_device(device.ordinal);  // the communicator lives on the process's GPU
  ncclUniqueId id{};
  if (comm.root()) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  comm.broadcast(&id, sizeof id);
  auto nccl = std::make_shared<NcclComm>();
  check_nccl(ncclCommInitRank(&nccl->comm, comm.size(), id, comm.rank()), "ncclCommInitRank");
  return [nccl](float* gradients, int64_t count, StreamHandle stream) {
    check_nccl(ncclAllReduce(gradients, gradients, size_t(count), ncclFloat, ncclSum, nccl->comm,
                             static_cast<cudaStream_t>(stream)),
               "ncclAllReduce");
  };
}

}  // namespace histocnn
