// The CUDA memory resources (built only where the CUDA toolkit is found):
//   CudaDirectResource   cudaMalloc / cudaFree per allocation (cnmem = 0)
//   CudaAsyncResource    cudaMallocAsync on the device's default pool, with the
//                        release threshold raised so freed memory stays pooled
//   CudaStreamEvents     cudaEventRecord / cudaStreamWaitEvent for the pool
// A failing CUDA call becomes OutOfMemory (cudaErrorMemoryAllocation) or a
// histocnn::Error naming the call and CUDA's message — never a bare code.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "memory/memory_resource.h"

namespace histocnn {

class CudaDirectResource final : public MemoryResource {
 public:
  MemoryStats stats() const override;
  std::string name() const override { return "direct"; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  mutable std::mutex mutex_;
  MemoryStats stats_;
};

class CudaAsyncResource final : public MemoryResource {
 public:
  explicit CudaAsyncResource(int device = 0);
  MemoryStats stats() const override;
  std::string name() const override { return "async"; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  void* pool_;  // cudaMemPool_t
  mutable std::mutex mutex_;
  MemoryStats stats_;
};

class CudaStreamEvents final : public StreamEvents {
 public:
  ~CudaStreamEvents() override;
  void* record(StreamHandle stream) override;
  void wait(StreamHandle stream, void* event) override;
  void release(void* event) override;

 private:
  std::mutex mutex_;
  std::vector<void*> spare_;  // recycled cudaEvent_t
};

// Total and free memory of the current device (cudaMemGetInfo).
void cuda_memory_info(size_t* free_bytes, size_t* total_bytes);

}  // namespace histocnn
