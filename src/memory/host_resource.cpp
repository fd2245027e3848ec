#include "memory/host_resource.h"

#include <algorithm>
#include <new>

namespace histocnn {

void* HostResource::do_allocate(size_t bytes, StreamHandle) {
  const size_t size = std::max<size_t>(bytes, 1);
  void* p = ::operator new(size, std::align_val_t(kAlignment), std::nothrow);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!p) throw OutOfMemory(bytes, stats_, name());
  stats_.allocations++;
  stats_.upstream_allocations++;
  stats_.bytes_in_use += size;
  stats_.bytes_reserved += size;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_reserved);
  return p;
}

void HostResource::do_deallocate(void* p, size_t bytes, StreamHandle) {
  const size_t size = std::max<size_t>(bytes, 1);
  ::operator delete(p, std::align_val_t(kAlignment));
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.deallocations++;
  stats_.upstream_deallocations++;
  stats_.bytes_in_use -= size;
  stats_.bytes_reserved -= size;
}

MemoryStats HostResource::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace histocnn
