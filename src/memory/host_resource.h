// Host memory as an upstream resource: aligned operator new/delete with exact
// statistics. It lets the pool and plan logic run (and be stress-tested under
// sanitizers) on machines without a GPU, and backs the CPU backend's arena.
#pragma once

#include <mutex>

#include "memory/memory_resource.h"

namespace histocnn {

class HostResource final : public MemoryResource {
 public:
  MemoryStats stats() const override;
  std::string name() const override { return "host"; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  mutable std::mutex mutex_;
  MemoryStats stats_;
};

}  // namespace histocnn
