// The pool: CNMeM's idea (reserve device memory up front, carve tensors out
// of it) without CNMeM's weaknesses.
//  * best-fit over a size-ordered index, block splitting, and coalescing with
//    both address neighbours: O(log n) per operation (CNMeM scanned a list,
//    which lost to plain cudaMalloc once many blocks were live);
//  * 256-byte alignment;
//  * growth when the reserve runs out: a new region of geometric size
//    (never the exact request, which fragments), up to a cap; or refusal with
//    a clear OutOfMemory naming requested/reserved/in-use/largest free block;
//  * memory freed on one stream and taken by another: the taking stream waits
//    on an event recorded at the free (GPU-side), so reuse is safe. Events are
//    recorded only once a second stream has appeared: a single-stream
//    training run pays nothing for this.
//
// Sizing like Theano's lib.cnmem: see cnmem_reserve_bytes().
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "memory/memory_resource.h"

namespace histocnn {

struct PoolOptions {
  size_t initial_bytes = 0;           // reserved at construction (0 = on first use)
  size_t maximum_bytes = SIZE_MAX;    // never reserve more than this in total
  bool grow = true;                   // false: refuse once the reserve is used
  double growth_factor = 2.0;         // a new region is (factor - 1) x reserved so far ...
  size_t minimum_region = 32u << 20;  // ... and at least this
};

// Theano's cnmem value: 0 = no pool; 0 < v <= 1 = that fraction of the device's
// total memory (1 means 95%, as Theano did: headroom for cuDNN/cuBLAS handles
// and workspaces, whose creation failed under a 98% reserve); v > 1 = v MB.
// Throws naming `flag` for negative or non-finite values.
size_t cnmem_reserve_bytes(double value, size_t device_total_bytes, const std::string& flag);

class PoolResource final : public MemoryResource {
 public:
  PoolResource(MemoryResource& upstream, const PoolOptions& options,
               StreamEvents* events = nullptr);
  ~PoolResource() override;
  PoolResource(const PoolResource&) = delete;
  PoolResource& operator=(const PoolResource&) = delete;

  MemoryStats stats() const override;
  std::string name() const override { return "pool"; }
  // Number of free blocks (1 per region when everything is free and coalesced).
  size_t free_block_count() const;
  size_t region_count() const;

 private:
  struct Event;  // a recorded stream event, released when no block needs it
  struct Block {
    size_t size;
    int region;
    bool free;
    StreamHandle stream;                          // the stream that last used it
    std::vector<std::shared_ptr<Event>> pending;  // events other streams must wait for
  };
  using BlockMap = std::map<char*, Block>;

  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  void add_region(size_t bytes);
  MemoryStats snapshot() const;  // stats_ plus the largest free block; lock held
  void insert_free(BlockMap::iterator it);
  void erase_free(BlockMap::iterator it);
  BlockMap::iterator coalesce(BlockMap::iterator it);

  MemoryResource& upstream_;
  PoolOptions options_;
  StreamEvents* events_;
  mutable std::mutex mutex_;
  BlockMap blocks_;                                  // every block, by address
  std::set<std::pair<size_t, char*>> free_by_size_;  // free blocks, best fit first
  std::vector<std::pair<char*, size_t>> regions_;
  std::vector<StreamHandle> streams_;  // streams seen so far
  uint64_t event_sequence_ = 0;
  MemoryStats stats_;
};

}  // namespace histocnn
