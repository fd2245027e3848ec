#include "memory/memory_engine.h"

#include <unistd.h>

#include <cstdio>

#include "core/error.h"
#include "memory/adaptors.h"
#include "memory/host_resource.h"
#include "memory/pool_resource.h"
#ifdef HISTOCNN_HAVE_CUDA
#include "memory/cuda_resources.h"
#endif

namespace histocnn {

size_t parse_byte_size(const std::string& text, const std::string& flag) {
  double value = 0;
  char unit[8] = {0};
  const int n = std::sscanf(text.c_str(), "%lf%7s", &value, unit);
  require(n >= 1 && value > 0 && value < 1e15,
          flag + ": '" + text + "' is not a size (e.g. 4GB, 512MB)");
  const std::string u = unit;
  double scale = 1 << 20;
  if (u == "GB" || u == "G" || u == "GiB")
    scale = double(1u << 30);
  else if (u == "KB" || u == "K" || u == "KiB")
    scale = 1024;
  else if (u == "B")
    scale = 1;
  else
    require(u.empty() || u == "MB" || u == "M" || u == "MiB",
            flag + ": unknown unit '" + u + "' (B, KB, MB, GB)");
  require(value * scale < 0x1p62, flag + ": '" + text + "' is larger than any memory");
  return size_t(value * scale);
}

MemoryEngine::MemoryEngine(const MemoryEngineOptions& o) : options_(o) {
  const std::string& allocator = o.config.allocator;
  auto push = [&](std::unique_ptr<MemoryResource> r) {
    top_ = r.get();
    chain_.push_back(std::move(r));
  };
  if (o.device.is_cuda()) {
#ifdef HISTOCNN_HAVE_CUDA
    use_cuda_device(o.device.ordinal);  // every resource below lives there
    size_t free_bytes = 0;
    cuda_memory_info(&free_bytes, &device_bytes_);
    device_used_at_start_ = int64_t(device_bytes_ - free_bytes);
    if (allocator != "async") push(std::make_unique<CudaDirectResource>());
    events_ = std::make_unique<CudaStreamEvents>();
#else
    fail("--device cuda: this build of histocnn has no CUDA support");
#endif
  } else {
    require(allocator != "async", "--allocator async: needs --device cuda (cudaMallocAsync)");
    push(std::make_unique<HostResource>());
    device_bytes_ = size_t(sysconf(_SC_PHYS_PAGES)) * size_t(sysconf(_SC_PAGE_SIZE));
  }
  if (o.limit_bytes) device_bytes_ = std::min(device_bytes_, o.limit_bytes);
#ifdef HISTOCNN_HAVE_CUDA
  if (allocator == "async")
    push(std::make_unique<CudaAsyncResource>(o.device.ordinal, device_bytes_));
#endif
  // The limit counts what the allocator asks of the device (async: what it hands out).
  if (o.limit_bytes) push(std::make_unique<LimitAdaptor>(*top_, o.limit_bytes));
  if (allocator == "pool") {
    PoolOptions pool;
    // CNMeM's sizing against the device (or the limit). On the host a
    // fraction of RAM means nothing: there the pool starts empty and grows,
    // unless a size in MB is given.
    if (o.device.is_cuda() || o.config.gpu_mem_pool > 1)
      reserve_bytes_ = cnmem_reserve_bytes(o.config.gpu_mem_pool, device_bytes_, "--gpu-mem-pool");
    pool.initial_bytes = reserve_bytes_;
    // A limit sits under the pool: growth past it fails there, naming the limit.
    push(std::make_unique<PoolResource>(*top_, pool, events_.get()));
  }
  if (!o.allocation_log.empty()) push(std::make_unique<LoggingAdaptor>(*top_, o.allocation_log));
  push(std::make_unique<StatisticsAdaptor>(*top_));
}

int64_t MemoryEngine::device_growth_bytes() const {
  if (device_used_at_start_ < 0) return -1;
#ifdef HISTOCNN_HAVE_CUDA
  use_cuda_device(options_.device.ordinal);
  size_t free_bytes = 0, total = 0;
  cuda_memory_info(&free_bytes, &total);
  return int64_t(total - free_bytes) - device_used_at_start_;
#else
  return -1;
#endif
}

MemoryEngine::~MemoryEngine() {
  while (!chain_.empty()) chain_.pop_back();  // top first: adaptors before what they wrap
}

nlohmann::json MemoryEngine::to_json() const {
  nlohmann::json j = stats().to_json();
  j["allocator"] = options_.config.allocator;
  j["source"] = options_.config.source;
  j["device"] = options_.device.kind;
  j["limit_bytes"] = options_.limit_bytes;
  j["reserve_bytes"] = reserve_bytes_;
  if (options_.config.allocator == "pool") j["gpu_mem_pool"] = options_.config.gpu_mem_pool;
  if (!options_.allocation_log.empty()) j["allocation_log"] = options_.allocation_log;
  return j;
}

std::string MemoryEngine::describe() const {
  std::string s = options_.config.to_string() + " on " + options_.device.kind;
  if (options_.limit_bytes) s += ", limit " + std::to_string(options_.limit_bytes >> 20) + " MB";
  if (reserve_bytes_) s += ", reserved " + std::to_string(reserve_bytes_ >> 20) + " MB";
  return s;
}

}  // namespace histocnn
