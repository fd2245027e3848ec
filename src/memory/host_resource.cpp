#include "memory/host_resource.h"

#include <algorithm>
#include <new>

namespace histocnn {

void* HostResource::do_allocate(size_t bytes, StreamHandle) {
  if (bytes > SIZE_MAX / 2) throw OutOfMemory(bytes, stats(), name());
  void* p = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(kAlignment), std::nothrow);
  if (!p) throw OutOfMemory(bytes, stats(), name());
  return p;
}

void HostResource::do_deallocate(void* p, size_t, StreamHandle) {
  ::operator delete(p, std::align_val_t(kAlignment));
}

}  // namespace histocnn
