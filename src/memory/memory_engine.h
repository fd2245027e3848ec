// The chain of resources one run allocates through, built from the resolved
// memory configuration (memory_config.h) for a device:
//
//   statistics ← [logging] ← allocator ← [limit] ← device upstream
//
//   device upstream  host: aligned new/delete;  cuda: cudaMalloc/cudaFree
//   limit            --gpu-mem-limit: emulate a smaller device (e.g. 4GB, a GTX-980)
//   allocator        direct: none (every tensor an upstream call, the paper's cnmem = 0)
//                    pool:   TLSF pool, reserve per --gpu-mem-pool (CNMeM's meaning)
//                    async:  cudaMallocAsync on an own pool (cuda only; above the limit)
//                    plan:   none here — the step plans one arena (planned() is true)
//   logging          --allocation-log FILE: a replayable CSV of every call
//   statistics       counts for metrics.json["allocator"], for every run and device
//
// Owns every resource of the chain; resource() is the top. Not copyable.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/device.h"
#include "memory/memory_config.h"
#include "memory/memory_resource.h"

namespace histocnn {

struct MemoryEngineOptions {
  Device device;  // selected (backends/backend.h select_device); its memory
  MemoryConfig config;
  size_t limit_bytes = 0;      // 0 = no limit
  std::string allocation_log;  // "" = none
};

class MemoryEngine {
 public:
  // Throws histocnn::Error naming the flag for combinations that mean nothing
  // (async on the CPU) and OutOfMemory when a pool's initial reserve fails.
  explicit MemoryEngine(const MemoryEngineOptions& options);
  ~MemoryEngine();
  MemoryEngine(const MemoryEngine&) = delete;
  MemoryEngine& operator=(const MemoryEngine&) = delete;

  MemoryResource& resource() { return *top_; }
  bool planned() const { return options_.config.allocator == "plan"; }
  MemoryStats stats() const { return top_->stats(); }
  // Bytes the device offers this run (the limit, if lower).
  size_t device_bytes() const { return device_bytes_; }
  // CUDA: how much more of the device is in use now than when the engine was
  // made (cudaMemGetInfo's total - free, both times): this chain's
  // allocations plus what the libraries took meanwhile (cuDNN's and cuBLAS's
  // workspaces and lazy buffers) — what PyTorch's max_memory_allocated does
  // not count. Other processes on the device count too. -1 on the host.
  int64_t device_growth_bytes() const;
  // {"allocator", "source", "device", "limit_bytes", "reserve_bytes", stats...}
  nlohmann::json to_json() const;
  std::string describe() const;  // one line

 private:
  MemoryEngineOptions options_;
  std::vector<std::unique_ptr<MemoryResource>> chain_;  // bottom first
  std::unique_ptr<class StreamEvents> events_;
  MemoryResource* top_ = nullptr;
  size_t device_bytes_ = 0, reserve_bytes_ = 0;
  int64_t device_used_at_start_ = -1;  // CUDA: total - free when made
};

// Parses "4GB", "512MB", "4096" (MB), "1.5G", "300KB", "100B"; throws naming `flag`.
size_t parse_byte_size(const std::string& text, const std::string& flag);

}  // namespace histocnn
