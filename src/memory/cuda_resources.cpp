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

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t status = cudaGetDeviceCount(&n);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("no CUDA device: ") + cudaGetErrorString(status);
  }
  return n > 0 ? "" : "no CUDA device: the driver reports none";
}

void cuda_memory_info(size_t* free_bytes, size_t* total_bytes) {
  check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

void* CudaDirectResource::do_allocate(size_t bytes, StreamHandle) {
  if (bytes > SIZE_MAX / 2) throw OutOfMemory(bytes, {}, name());
  void* p = nullptr;
  const cudaError_t status = cudaMalloc(&p, std::max<size_t>(bytes, 1));
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear the error so later calls do not report it
    throw OutOfMemory(bytes, {}, name());
  }
  check(status, "cudaMalloc");
  return p;
}

void CudaDirectResource::do_deallocate(void* p, size_t, StreamHandle) {
  check(cudaFree(p), "cudaFree");
}

int select_cuda_device(int local_rank) {
  const std::string why = cuda_unavailable_reason();
  if (!why.empty()) throw Error(why);
  int devices = 0;
  check(cudaGetDeviceCount(&devices), "cudaGetDeviceCount");
  const int device = local_rank % devices;
  check(cudaSetDevice(device), "cudaSetDevice");
  return device;
}

void use_cuda_device(int ordinal) {
  check(cudaSetDevice(ordinal), "cudaSetDevice");
}

CudaAsyncResource::CudaAsyncResource(int device, size_t release_threshold) {
  if (device < 0) check(cudaGetDevice(&device), "cudaGetDevice");
  cudaMemPoolProps props = {};
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  cudaMemPool_t pool = nullptr;
  check(cudaMemPoolCreate(&pool, &props), "cudaMemPoolCreate");
  size_t free_bytes = 0, total = 0;
  check(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo");
  uint64_t threshold = std::min(release_threshold, total);
  check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold),
        "cudaMemPoolSetAttribute(ReleaseThreshold)");
  pool_ = pool;
}

CudaAsyncResource::~CudaAsyncResource() {
  cudaDeviceSynchronize();  // frees in flight must land before the pool goes
  cudaMemPoolDestroy(static_cast<cudaMemPool_t>(pool_));
}

void* CudaAsyncResource::do_allocate(size_t bytes, StreamHandle stream) {
  if (bytes > SIZE_MAX / 2) throw OutOfMemory(bytes, stats(), name());
  auto pool = static_cast<cudaMemPool_t>(pool_);
  auto s = static_cast<cudaStream_t>(stream);
  void* p = nullptr;
  cudaError_t status = cudaMallocFromPoolAsync(&p, std::max<size_t>(bytes, 1), pool, s);
  if (status == cudaErrorMemoryAllocation) {
    // Give back what the pool holds unused, wait for frees in flight, retry once.
    cudaGetLastError();
    check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
    check(cudaMemPoolTrimTo(pool, 0), "cudaMemPoolTrimTo");
    status = cudaMallocFromPoolAsync(&p, std::max<size_t>(bytes, 1), pool, s);
  }
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw OutOfMemory(bytes, stats(), name());
  }
  check(status, "cudaMallocFromPoolAsync");
  return p;
}

void CudaAsyncResource::do_deallocate(void* p, size_t, StreamHandle stream) {
  check(cudaFreeAsync(p, static_cast<cudaStream_t>(stream)), "cudaFreeAsync");
}

MemoryStats CudaAsyncResource::stats() const {
  auto pool = static_cast<cudaMemPool_t>(pool_);
  auto get = [&](cudaMemPoolAttr attr, const char* what) {
    uint64_t v = 0;
    check(cudaMemPoolGetAttribute(pool, attr, &v), what);
    return size_t(v);
  };
  MemoryStats s;
  s.pooled = true;
  s.bytes_reserved = get(cudaMemPoolAttrReservedMemCurrent, "cudaMemPoolGetAttribute(Reserved)");
  s.peak_bytes_reserved =
      get(cudaMemPoolAttrReservedMemHigh, "cudaMemPoolGetAttribute(ReservedHigh)");
  const size_t used = get(cudaMemPoolAttrUsedMemCurrent, "cudaMemPoolGetAttribute(Used)");
  s.free_bytes = s.bytes_reserved - std::min(s.bytes_reserved, used);
  s.largest_free_block = s.free_bytes;  // the pool does not expose its blocks
  return s;
}

void* CudaStreamEvents::create() {
  cudaEvent_t event = nullptr;
  check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
  return event;
}

void CudaStreamEvents::record(void* event, StreamHandle stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)),
        "cudaEventRecord");
}

void CudaStreamEvents::wait(StreamHandle stream, void* event) {
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0),
        "cudaStreamWaitEvent");
}

void CudaStreamEvents::destroy(void* event) {
  cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

}  // namespace histocnn
