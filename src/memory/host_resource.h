// Host memory as a resource: aligned operator new/delete. It is the upstream
// of the pool in tests (so the pool's logic runs, and is stress-tested under
// sanitizers, on machines without a GPU) and the CPU backend's resource.
// Memory space: host. Streams are ignored (host memory is synchronous).
// Counts come from a StatisticsAdaptor around it (memory/adaptors.h).
#pragma once

#include "memory/memory_resource.h"

namespace histocnn {

class HostResource final : public MemoryResource {
 public:
  std::string name() const override { return "host"; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
};

}  // namespace histocnn
