// The CUDA memory resources (built only where the CUDA toolkit is found).
// Memory space: device memory of the current device. Thread-safe.
//   CudaDirectResource   cudaMalloc / cudaFree per allocation (the paper's cnmem = 0).
//                        cudaFree synchronises the device: that is the cost CNMeM removed.
//   CudaAsyncResource    cudaMallocAsync / cudaFreeAsync on its own pool
//                        (cudaMemPoolCreate; the process-wide default pool is left
//                        alone), with a finite release threshold; on out-of-memory
//                        it trims the pool and retries once before failing.
//   CudaStreamEvents     cudaEventRecord / cudaStreamWaitEvent for the pool
// A failing CUDA call becomes OutOfMemory (cudaErrorMemoryAllocation) or a
// histocnn::Error naming the call and CUDA's message — never a bare code.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "memory/memory_resource.h"

namespace histocnn {

class CudaDirectResource final : public MemoryResource {
 public:
  std::string name() const override { return "direct"; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
};

class CudaAsyncResource final : public MemoryResource {
 public:
  // release_threshold: bytes the pool keeps reserved across synchronisations
  // (the rest goes back to the device); capped at the device's memory.
  // device < 0: the current device (select_cuda_device's choice).
  explicit CudaAsyncResource(int device = -1, size_t release_threshold = size_t(1) << 30);
  ~CudaAsyncResource() override;
  CudaAsyncResource(const CudaAsyncResource&) = delete;
  CudaAsyncResource& operator=(const CudaAsyncResource&) = delete;
  // Reserved/used bytes and peaks from the pool's own attributes.
  MemoryStats stats() const override;
  std::string name() const override { return "async"; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  void* pool_;  // cudaMemPool_t, owned
};

class CudaStreamEvents final : public StreamEvents {
 public:
  void* create() override;
  void record(void* event, StreamHandle stream) override;
  void wait(StreamHandle stream, void* event) override;
  void destroy(void* event) override;
};

// Number of CUDA devices; 0 when there is no device or no driver (never throws).
int cuda_device_count();
// "no CUDA device: <why>" when there is none, "" otherwise.
std::string cuda_unavailable_reason();
// Total and free memory of the current device (cudaMemGetInfo).
void cuda_memory_info(size_t* free_bytes, size_t* total_bytes);
// Makes GPU local_rank % devices this process's current device, once, before
// anything touches one (handles, pools, NCCL): every later CUDA object —
// the backend's handles, the async pool, NCCL's communicator — lives there.
// Returns the device. Throws with cuda_unavailable_reason() when there is none.
int select_cuda_device(int local_rank);
// Makes CUDA device `ordinal` current on the calling thread (cudaSetDevice):
// each owner of device objects calls it with the selected device before
// creating them, so none depends on what another part left current.
void use_cuda_device(int ordinal);

}  // namespace histocnn
