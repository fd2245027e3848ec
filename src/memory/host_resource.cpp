#include "memory/host_resource.h"

#include <algorithm>
#include <new>

namespace histocnn {

void* HostResource::do_allocate(size_t bytes, StreamHandle) {
  const size_t size = std::max<size_t>(bytes, 1);
  void* p = ::operator new(size, std::align_val_t(kAlignment), std::nothrow);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!p) throw OutOfMemory(bytes, stats_, name());
  count_allocation(stats_, size, /*upstream=*/true, /*reserved_is_in_use=*/true);
  return p;
}

void HostResource::do_deallocate(void* p, size_t bytes, StreamHandle) {
  const size_t size = std::max<size_t>(bytes, 1);
  ::operator delete(p, std::align_val_t(kAlignment));
  std::lock_guard<std::mutex> lock(mutex_);
  count_deallocation(stats_, size, /*upstream=*/true, /*reserved_is_in_use=*/true);
}

MemoryStats HostResource::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

}  // namespace histocnn
