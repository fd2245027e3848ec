// Memory resources: one small interface, composable implementations (after
// RAPIDS RMM's device_memory_resource and its adaptors).
//
//   resources   host (aligned new/delete)            memory/host_resource.h
//               direct: cudaMalloc/cudaFree           memory/cuda_resources.h (cnmem = 0)
//               async: cudaMallocAsync, own pool      memory/cuda_resources.h
//               pool: TLSF over an upstream           memory/pool_resource.h (cnmem > 0)
//   adaptors    statistics, logging, limit            memory/adaptors.h
//   plan        one arena, tensors at planned offsets memory/step_memory.h, memory_plan.h
//
// A pool allocates from an upstream resource, so its logic runs over a host
// upstream in CI and over cudaMalloc on a GPU; adaptors wrap any resource.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/error.h"

namespace histocnn {

// A CUDA stream as an opaque handle (cudaStream_t is a pointer), so the
// host-side logic compiles without CUDA. nullptr = the default stream.
using StreamHandle = void*;

constexpr size_t kAlignment = 256;

// `value` rounded up to a multiple of `alignment` (a power of two); requires
// value <= SIZE_MAX / 2 (callers refuse larger requests first: no wrap).
constexpr size_t align_to(size_t value, size_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

struct MemoryStats {
  size_t bytes_in_use = 0, peak_bytes_in_use = 0;
  size_t bytes_reserved = 0, peak_bytes_reserved = 0;
  uint64_t allocations = 0, deallocations = 0;                    // calls into this resource
  uint64_t upstream_allocations = 0, upstream_deallocations = 0;  // device malloc/free calls
  uint64_t served_from_pool = 0;  // allocations needing no upstream call
  uint64_t stream_waits = 0;      // cross-stream reuses ordered by an event wait
  size_t largest_free_block = 0, free_bytes = 0;
  // True for resources that keep a reserve (pool, async): their reserved
  // bytes and upstream calls differ from what is in use.
  bool pooled = false;
  // 1 - largest_free_block / free_bytes: 0 = all free memory in one block.
  double fragmentation() const {
    return free_bytes ? 1.0 - double(largest_free_block) / double(free_bytes) : 0.0;
  }
  nlohmann::json to_json() const;
  std::string summary() const;  // one line for logs
};

// A user-facing error (histocnn::Error): the CLI prints it as one line.
class OutOfMemory : public Error {
 public:
  OutOfMemory(size_t requested, const MemoryStats& stats, const std::string& resource,
              const std::string& hint = "");
  size_t requested;
  MemoryStats stats;
  std::string hint;  // what the thrower knew beyond the numbers ("" = nothing)
  // The same failure seen from a resource or step further up: its stats and
  // name, the hints of both.
  static std::string join(const std::string& a, const std::string& b) {
    return a.empty() ? b : b.empty() ? a : a + "; " + b;
  }
};

class MemoryResource {
 public:
  virtual ~MemoryResource() = default;

  // requires: bytes <= SIZE_MAX / 2 (larger requests throw OutOfMemory, they never wrap).
  //           `stream` is a stream of the device this resource serves (nullptr = default).
  // ensures:  a pointer aligned to kAlignment (256), valid for `bytes` bytes of the
  //           resource's memory space (device memory for CUDA resources, host memory for
  //           host ones) and usable by work on `stream` at once, in stream order; it never
  //           returns null. bytes == 0 returns a unique valid pointer.
  // throws:   OutOfMemory, carrying the resource's statistics, when the memory is not there.
  // sync:     never synchronises the device (direct's cudaMalloc may, as CUDA decides).
  void* allocate(size_t bytes, StreamHandle stream = nullptr) { return do_allocate(bytes, stream); }

  // requires: p was returned by allocate(bytes, ...) on this resource with the same bytes
  //           and not yet deallocated (resources check what they can and throw
  //           std::logic_error); all host access to p has finished.
  // ensures:  the memory may be reused by work on `stream` at once (stream order), and by
  //           work on any other stream only after that stream waited for `stream`'s work
  //           (the pool makes it wait through an event). Never blocks the host.
  void deallocate(void* p, size_t bytes, StreamHandle stream = nullptr) {
    do_deallocate(p, bytes, stream);
  }

  // What the resource knows by itself: resources that keep a reserve report it
  // (pooled = true); counts of calls and bytes in use come from a
  // StatisticsAdaptor around any resource. Exact at every call.
  virtual MemoryStats stats() const { return {}; }
  virtual std::string name() const = 0;

  // Thread-safety: every resource and adaptor may be called from several
  // threads at once.

 private:
  virtual void* do_allocate(size_t bytes, StreamHandle stream) = 0;
  virtual void do_deallocate(void* p, size_t bytes, StreamHandle stream) = 0;
};

// Stream-ordering hooks the pool needs to hand memory freed on one stream to
// another: one reusable event per stream, recorded on that stream when another
// stream takes its memory; the taking stream waits for it GPU-side (the host
// does not block). CUDA implements them with cudaEventRecord /
// cudaStreamWaitEvent; host tests use a recorder that checks the ordering.
// Thread-safety: called with the pool's lock held, from any thread.
class StreamEvents {
 public:
  virtual ~StreamEvents() = default;
  virtual void* create() = 0;  // a new event
  virtual void record(void* event,
                      StreamHandle stream) = 0;  // event := everything given to stream so far
  virtual void wait(StreamHandle stream, void* event) = 0;  // stream's later work waits for event
  virtual void destroy(void* event) = 0;
};

}  // namespace histocnn
