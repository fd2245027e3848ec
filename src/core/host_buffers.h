// Where large host buffers come from. By default ordinary memory; a device
// backend may supply page-locked memory instead, so that its copy to the
// device is a DMA straight from the buffer (the CUDA step's batch images: no
// copy into a staging buffer on the training thread, docs/design/gpu-step.md).
// A source is shared by the buffers it made (std::shared_ptr): it outlives
// them, whatever is destroyed first.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

namespace histocnn {

class HostBufferSource {
 public:
  virtual ~HostBufferSource() = default;
  // requires: bytes > 0.
  // ensures:  a pointer aligned to kHostBufferAlignment, valid for `bytes`
  //           bytes until deallocate(p, bytes); never null (throws
  //           std::bad_alloc or histocnn::Error). Thread-safe.
  virtual void* allocate(size_t bytes) = 0;
  // requires: p came from allocate(bytes) of this source, not yet returned.
  virtual void deallocate(void* p, size_t bytes) noexcept = 0;
  virtual std::string name() const = 0;
};

constexpr size_t kHostBufferAlignment = 64;  // a cache line: AVX-512 loads never split

// A standard allocator drawing from a HostBufferSource (null: aligned
// operator new). It travels with its storage on move assignment and swap, so
// a buffer always goes back to the source it came from.
template <typename T>
class SourcedAllocator {
 public:
  using value_type = T;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using propagate_on_container_copy_assignment = std::true_type;
  using is_always_equal = std::false_type;

  SourcedAllocator() = default;
  explicit SourcedAllocator(std::shared_ptr<HostBufferSource> source)
      : source_(std::move(source)) {}
  template <typename U>
  SourcedAllocator(const SourcedAllocator<U>& other) : source_(other.source()) {}

  T* allocate(size_t n) {
    if (n > size_t(-1) / 2 / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
    void* p = source_ ? source_->allocate(bytes)
                      : ::operator new(bytes, std::align_val_t(kHostBufferAlignment));
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
    if (source_)
      source_->deallocate(p, bytes);
    else
      ::operator delete(p, std::align_val_t(kHostBufferAlignment));
  }
  const std::shared_ptr<HostBufferSource>& source() const { return source_; }

  template <typename U>
  bool operator==(const SourcedAllocator<U>& other) const {
    return source_ == other.source();
  }
  template <typename U>
  bool operator!=(const SourcedAllocator<U>& other) const {
    return !(*this == other);
  }

 private:
  std::shared_ptr<HostBufferSource> source_;
};

// A batch's images: floats from a source (see Batch in data/loader.h), or
// bytes (core/byte_images.h).
using HostFloats = std::vector<float, SourcedAllocator<float>>;
using HostBytes = std::vector<uint8_t, SourcedAllocator<uint8_t>>;

}  // namespace histocnn
