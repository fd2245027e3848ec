// The pool: CNMeM's idea (reserve device memory up front, carve tensors out
// of it), rebuilt for speed and stream safety.
//
// Index: two-level segregated fit (TLSF, Masmano et al. 2004). Free blocks sit
// in doubly linked lists per size class: a first level of power-of-two classes
// and 32 linear sub-classes in each, with one bitmap word per level, so finding
// a block that fits is two count-trailing-zeros instructions. A request is
// rounded up to the next sub-class boundary ("good fit"), so the head of any
// non-empty class at or above it fits without a list walk. Block descriptors
// live in a slab (a vector of structs plus a free-index stack) and link to
// their address neighbours by index, so splitting and coalescing are O(1) and
// the hot path never calls malloc. A flat open-addressing table maps a live
// pointer to its descriptor. allocate and deallocate are O(1).
//
// Streams: every stream has its own TLSF index. A block freed on stream S goes
// to S's lists and is reusable by work on S at once (stream order). Another
// stream T takes it only after T waits (GPU-side) on S's event, recorded when
// T takes it (one reused event per stream, so a free costs no event record; the
// event captures everything S was given up to that moment, which includes the
// work that used the block). Free neighbours coalesce only within one stream's
// lists. When no single block fits anywhere, T waits on every other stream once
// and adopts all their free blocks (coalescing them), before growing.
//
// Growth: a new region of geometric size (never the exact request, which
// fragments), up to a cap; or refusal with OutOfMemory naming requested,
// reserved, in use, largest free block and fragmentation. Requests so large
// that rounding would overflow (near SIZE_MAX) are refused the same way.
//
// Sizing like Theano's lib.cnmem: see cnmem_reserve_bytes().
//
// Thread-safety: every member is safe to call concurrently (one mutex; the
// critical sections are a few dozen instructions).
#pragma once

#include <cstdint>
#include <mutex>
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
  // Number of free blocks (1 per region when everything is free and coalesced
  // on one stream).
  size_t free_block_count() const;
  size_t region_count() const;

 private:
  static constexpr int kFirstLevels = 64;
  static constexpr int kSecondLevelLog2 = 5;
  static constexpr int kSecondLevels = 1 << kSecondLevelLog2;
  static constexpr uint32_t kNone = UINT32_MAX;

  struct Block {
    char* ptr;
    size_t size;
    uint32_t prev_phys, next_phys;  // address neighbours in the same region (kNone at its ends)
    uint32_t prev_free, next_free;  // the size-class list, while free
    int32_t owner;                  // index of the stream whose lists hold it (-1: in use)
    bool free;
  };
  // One stream's TLSF index.
  struct StreamLists {
    StreamHandle stream;
    void* event = nullptr;  // recorded on `stream` when another stream takes its memory
    uint64_t first_bitmap = 0;
    uint32_t second_bitmap[kFirstLevels] = {};
    uint32_t heads[kFirstLevels][kSecondLevels];
    size_t free_blocks = 0;
    bool fresh = false;  // lists 0 when reserved up front: memory no stream has used
    StreamLists();
  };
  // Pointer -> descriptor index, open addressing with linear probing and
  // backward-shift deletion (no tombstones). Holds only blocks in use.
  class PointerTable {
   public:
    void insert(const char* p, uint32_t block);
    uint32_t find(const char* p) const;  // kNone if absent
    void erase(const char* p);

   private:
    size_t slot_of(const char* p) const;
    void grow();
    std::vector<std::pair<const char*, uint32_t>> slots_;
    size_t count_ = 0, mask_ = 0;
  };

  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;

  int lists_of(StreamHandle stream);  // index into streams_, created on first use
  uint32_t new_block();
  void insert_free(int owner, uint32_t b);
  void remove_free(uint32_t b);
  uint32_t find_fit(int owner, size_t size) const;  // kNone if no block fits
  uint32_t coalesce(uint32_t b);                    // with free neighbours of the same owner
  uint32_t take_from_other_stream(int taker, size_t size);
  uint32_t adopt_all_free_blocks(int taker, size_t size);
  void wait_for(int taker, int owner);
  uint32_t grow(int owner, size_t size, size_t requested, bool exact = false);
  size_t largest_free_block() const;
  MemoryStats snapshot() const;  // lock held

  MemoryResource& upstream_;
  PoolOptions options_;
  StreamEvents* events_;
  mutable std::mutex mutex_;
  std::vector<Block> blocks_;           // the slab
  std::vector<uint32_t> spare_blocks_;  // unused slab entries
  std::vector<StreamLists> streams_;
  int last_stream_ = -1;  // cache: the stream of the previous call
  PointerTable in_use_;
  std::vector<std::pair<char*, size_t>> regions_;
  MemoryStats stats_;
};

}  // namespace histocnn
