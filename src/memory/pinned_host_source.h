// Page-locked host memory for buffers a GPU reads (built only where the CUDA
// toolkit is found): cudaHostAlloc, portable to every context, so a copy from
// it to the device is one DMA with no staging. The CUDA step makes its batch
// images here (TrainingStep::input_buffers) and asks holds() whether a batch
// it is given came from it.
//
// Where page-locked memory is refused (cudaHostAlloc fails: a container's
// locked-memory limit, the host's RAM), a buffer comes from ordinary memory
// instead, with one warning on stderr: holds() is false for it, and the step
// copies it through its staging buffer as before. Thread-safe (loader threads
// allocate while the training thread asks).
#pragma once

#include <atomic>

#include "core/address_ranges.h"
#include "core/host_buffers.h"

namespace histocnn {

class PinnedHostSource final : public HostBufferSource {
 public:
  // device: the GPU whose context allocates (set on the allocating thread,
  // so a loader thread does not create a context on GPU 0).
  explicit PinnedHostSource(int device) : device_(device) {}
  void* allocate(size_t bytes) override;
  void deallocate(void* p, size_t bytes) noexcept override;
  std::string name() const override { return "page-locked (cudaHostAlloc)"; }

  // True when [p, p + bytes) lies in one page-locked buffer of this source.
  bool holds(const void* p, size_t bytes) const { return pinned_.covers(p, bytes); }
  size_t pinned_buffers() const { return pinned_.size(); }
  size_t refused_buffers() const { return refused_.load(); }

 private:
  int device_;
  AddressRanges pinned_;
  std::atomic<size_t> refused_{0};
};

}  // namespace histocnn
