#include "memory/host_resource.h"

#include <algorithm>
#include <new>

#include "core/machine_memory.h"

namespace histocnn {

void* HostResource::do_allocate(size_t bytes, StreamHandle) {
  if (bytes > SIZE_MAX / 2) throw OutOfMemory(bytes, stats(), name());
  // More than the machine has: refused before overcommit accepts it and the
  // kernel kills the process when the pages are touched.
  if (bytes > physical_memory_bytes())
    throw OutOfMemory(
        bytes, stats(), name(),
        "more than this machine's " + gigabytes(physical_memory_bytes()) + " of memory");
  void* p = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(kAlignment), std::nothrow);
  if (!p) throw OutOfMemory(bytes, stats(), name());
  return p;
}

void HostResource::do_deallocate(void* p, size_t, StreamHandle) {
  ::operator delete(p, std::align_val_t(kAlignment));
}

}  // namespace histocnn
