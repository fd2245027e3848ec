#include "memory/cuda_resources.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"

namespace histocnn {
namespace {

void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess)
    fail(std::string(call) + " failed: " + cudaGetErrorString(status) + " (" +
         cudaGetErrorName(status) + ")");
}

}  // namespace

void cuda_memory_info(size_t* free_bytes, size_t* total_bytes) {
  check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

void* CudaDirectResource::do_allocate(size_t bytes, StreamHandle) {
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  std::lock_guard<std::mutex> lock(mutex_);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the sticky-free error state
    throw OutOfMemory(bytes, stats_, name());
  }
  check(status, "cudaMalloc");
  count_allocation(stats_, bytes, /*upstream=*/true, /*reserved_is_in_use=*/true);
  return p;
}

void CudaDirectResource::do_deallocate(void* p, size_t bytes, StreamHandle) {
  check(cudaFree(p), "cudaFree");
  std::lock_guard<std::mutex> lock(mutex_);
  count_deallocation(stats_, bytes, /*upstream=*/true, /*reserved_is_in_use=*/true);
}

MemoryStats CudaDirectResource::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

CudaAsyncResource::CudaAsyncResource(int device) {
  cudaMemPool_t pool;
  check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
  // Keep freed memory in the pool instead of returning it at every sync.
  uint64_t threshold = UINT64_MAX;
  check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
        "cudaMemPoolSetAttribute(ReleaseThreshold)");
  pool_ = pool;
}

void* CudaAsyncResource::do_allocate(size_t bytes, StreamHandle stream) {
  void* p = nullptr;
  const cudaError_t status =
      cudaMallocAsync(&p, std::max<size_t>(bytes, 1), static_cast<cudaStream_t>(stream));
  std::lock_guard<std::mutex> lock(mutex_);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw OutOfMemory(bytes, stats_, name());
  }
  check(status, "cudaMallocAsync");
  count_allocation(stats_, bytes, /*upstream=*/false, /*reserved_is_in_use=*/false);
  uint64_t reserved = 0;
  cudaMemPoolGetAttribute(static_cast<cudaMemPool_t>(pool_), cudaMemPoolAttrReservedMemCurrent,
                          &reserved);
  stats_.bytes_reserved = reserved;
  stats_.peak_bytes_reserved = std::max<size_t>(stats_.peak_bytes_reserved, reserved);
  return p;
}

void CudaAsyncResource::do_deallocate(void* p, size_t bytes, StreamHandle stream) {
  check(cudaFreeAsync(p, static_cast<cudaStream_t>(stream)), "cudaFreeAsync");
  std::lock_guard<std::mutex> lock(mutex_);
  count_deallocation(stats_, bytes, /*upstream=*/false, /*reserved_is_in_use=*/false);
}

MemoryStats CudaAsyncResource::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

CudaStreamEvents::~CudaStreamEvents() {
  for (void* e : spare_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
}

void* CudaStreamEvents::record(StreamHandle stream) {
  cudaEvent_t event = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!spare_.empty()) {
      event = static_cast<cudaEvent_t>(spare_.back());
      spare_.pop_back();
    }
  }
  if (!event) check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventRecord(event, static_cast<cudaStream_t>(stream)), "cudaEventRecord");
  return event;
}

void CudaStreamEvents::wait(StreamHandle stream, void* event) {
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0),
        "cudaStreamWaitEvent");
}

void CudaStreamEvents::release(void* event) {
  std::lock_guard<std::mutex> lock(mutex_);
  spare_.push_back(event);
}

}  // namespace histocnn
