// Device memory resources: one small interface, composable implementations
// (after RAPIDS RMM's device_memory_resource).
//
//   direct  cudaMalloc/cudaFree per tensor          (the paper's cnmem = 0)
//   pool    a reserve carved best-fit, coalescing   (cnmem > 0, and better)
//   async   cudaMallocAsync, stream-ordered         (CUDA's own pool)
//   plan    every tensor at a precomputed offset    (memory_plan.h)
//
// A resource allocates from an upstream resource where it needs raw memory, so
// the pool's logic runs over a host upstream in CI and over cudaMalloc on a GPU.
//
// Contract of every resource:
//  * allocate(bytes, stream) returns a pointer aligned to kAlignment, or throws
//    OutOfMemory (never returns null); bytes == 0 returns a unique valid pointer.
//  * deallocate(p, bytes, stream) takes exactly a pointer returned by allocate
//    with the same bytes; the memory may be reused by work on `stream` at once
//    (stream order), and by other streams only after that stream's work is done.
//  * stats() is exact at every call; resources are thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace histocnn {

// A CUDA stream as an opaque handle (cudaStream_t is a pointer), so the
// host-side logic compiles without CUDA. nullptr = the default stream.
using StreamHandle = void*;

constexpr size_t kAlignment = 256;

struct MemoryStats {
  size_t bytes_in_use = 0, peak_bytes_in_use = 0;
  size_t bytes_reserved = 0, peak_bytes_reserved = 0;
  uint64_t allocations = 0, deallocations = 0;                    // calls into this resource
  uint64_t upstream_allocations = 0, upstream_deallocations = 0;  // device malloc/free calls
  uint64_t served_from_pool = 0;  // allocations needing no upstream call
  size_t largest_free_block = 0, free_bytes = 0;
  // 1 - largest_free_block / free_bytes: 0 = all free memory in one block.
  double fragmentation() const {
    return free_bytes ? 1.0 - double(largest_free_block) / double(free_bytes) : 0.0;
  }
  nlohmann::json to_json() const;
  std::string summary() const;  // one line for logs
};

// Bookkeeping shared by resources: one allocation of `bytes` served by an
// upstream call (device malloc) or from a pool; reserved tracks in-use when
// every allocation is its own upstream call.
void count_allocation(MemoryStats& stats, size_t bytes, bool upstream, bool reserved_is_in_use);
void count_deallocation(MemoryStats& stats, size_t bytes, bool upstream, bool reserved_is_in_use);

class OutOfMemory : public std::runtime_error {
 public:
  OutOfMemory(size_t requested, const MemoryStats& stats, const std::string& resource);
  size_t requested;
  MemoryStats stats;
};

class MemoryResource {
 public:
  virtual ~MemoryResource() = default;
  void* allocate(size_t bytes, StreamHandle stream = nullptr) { return do_allocate(bytes, stream); }
  void deallocate(void* p, size_t bytes, StreamHandle stream = nullptr) {
    do_deallocate(p, bytes, stream);
  }
  virtual MemoryStats stats() const = 0;
  virtual std::string name() const = 0;

 private:
  virtual void* do_allocate(size_t bytes, StreamHandle stream) = 0;
  virtual void do_deallocate(void* p, size_t bytes, StreamHandle stream) = 0;
};

// Stream-ordering hooks a pool needs to hand memory freed on one stream to
// another: record an event on the freeing stream; make the taking stream wait
// for it (GPU-side, the host does not block). CUDA implements them with
// cudaEventRecord / cudaStreamWaitEvent; host tests use a recorder.
class StreamEvents {
 public:
  virtual ~StreamEvents() = default;
  virtual void* record(StreamHandle stream) = 0;            // returns an event
  virtual void wait(StreamHandle stream, void* event) = 0;  // stream waits for event
  virtual void release(void* event) = 0;
};

}  // namespace histocnn
