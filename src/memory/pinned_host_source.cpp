#include "memory/pinned_host_source.h"

#include <cuda_runtime.h>

#include <cstdio>

namespace histocnn {

void* PinnedHostSource::allocate(size_t bytes) {
  void* p = nullptr;
  cudaError_t status = cudaSetDevice(device_);
  if (status == cudaSuccess) status = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
  if (status == cudaSuccess) {
    try {
      pinned_.add(p, bytes);
    } catch (...) {
      cudaFreeHost(p);
      throw;
    }
    return p;
  }
  cudaGetLastError();  // not a sticky error: the step goes on with ordinary memory
  if (refused_++ == 0)
    std::fprintf(stderr,
                 "warning: page-locked memory for batches refused (%s, %zu MB); batches are "
                 "copied through the step's staging buffer instead\n",
                 cudaGetErrorString(status), bytes >> 20);
  return ::operator new(bytes, std::align_val_t(kHostBufferAlignment));
}

void PinnedHostSource::deallocate(void* p, size_t /*bytes*/) noexcept {
  if (pinned_.remove(p))
    cudaFreeHost(p);
  else
    ::operator delete(p, std::align_val_t(kHostBufferAlignment));
}

}  // namespace histocnn
