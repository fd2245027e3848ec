#include "memory/pool_resource.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace histocnn {

size_t cnmem_reserve_bytes(double value, size_t device_total, const std::string& flag) {
  require(std::isfinite(value) && value >= 0,
          flag + ": must be 0 (off), a fraction in (0, 1] or a size in MB (> 1)");
  if (value == 0) return 0;
  if (value <= 1) return align_to(size_t(double(device_total) * std::min(value, 0.95)), kAlignment);
  require(value < 1e12, flag + ": " + std::to_string(value) + " MB is not a plausible size");
  const size_t bytes = size_t(value * 1024 * 1024);
  require(device_total == 0 || bytes <= device_total,
          flag + ": " + std::to_string(size_t(value)) + " MB exceeds the device's " +
              std::to_string(device_total >> 20) + " MB");
  return align_to(bytes, kAlignment);
}

namespace {

constexpr int kUnitShift = 8;  // sizes are multiples of kAlignment = 256 = 1 << 8
static_assert(kAlignment == size_t(1) << kUnitShift);

int msb(uint64_t v) {
  return 63 - __builtin_clzll(v);
}

}  // namespace

// ---- pointer table --------------------------------------------------------

size_t PoolResource::PointerTable::slot_of(const char* p) const {
  // Pointers are 256-aligned: drop the zero bits, then Fibonacci hashing.
  const uint64_t h =
      (uint64_t(reinterpret_cast<uintptr_t>(p)) >> kUnitShift) * 0x9E3779B97F4A7C15ull;
  return size_t(h >> 32) & mask_;
}

void PoolResource::PointerTable::grow() {
  std::vector<std::pair<const char*, uint32_t>> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, {nullptr, kNone});
  mask_ = slots_.size() - 1;
  count_ = 0;
  for (const auto& [p, b] : old)
    if (p) insert(p, b);
}

void PoolResource::PointerTable::insert(const char* p, uint32_t block) {
  if ((count_ + 1) * 2 > slots_.size()) grow();  // load factor <= 1/2
  size_t i = slot_of(p);
  while (slots_[i].first) i = (i + 1) & mask_;
  slots_[i] = {p, block};
  ++count_;
}

uint32_t PoolResource::PointerTable::find(const char* p) const {
  if (slots_.empty()) return kNone;
  for (size_t i = slot_of(p);; i = (i + 1) & mask_) {
    if (slots_[i].first == p) return slots_[i].second;
    if (!slots_[i].first) return kNone;
  }
}

void PoolResource::PointerTable::erase(const char* p) {
  size_t i = slot_of(p);
  while (slots_[i].first != p) i = (i + 1) & mask_;
  // Backward shift: move later members of the probe run into the hole when
  // their home slot does not lie cyclically in (hole, their slot].
  for (size_t j = (i + 1) & mask_; slots_[j].first; j = (j + 1) & mask_) {
    const size_t home = slot_of(slots_[j].first);
    const bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = {nullptr, kNone};
  --count_;
}

// ---- size classes ---------------------------------------------------------

namespace {

// The class of a block of `units` (x 256 bytes): level 0 holds 1..31 units
// exactly; level f >= 1 holds [2^(f+4), 2^(f+5)) in 32 equal steps.
void size_class(size_t units, int* first, int* second) {
  if (units < 32) {
    *first = 0;
    *second = int(units);
    return;
  }
  const int f = msb(units);
  *second = int((units >> (f - 5)) - 32);
  *first = f - 4;
}

// The smallest class whose every block holds `units`: round up to the next
// sub-class boundary first.
void search_class(size_t units, int* first, int* second) {
  if (units >= 32) units += (size_t(1) << (msb(units) - 5)) - 1;
  size_class(units, first, second);
}

}  // namespace

PoolResource::StreamLists::StreamLists() {
  for (auto& row : heads) std::fill(std::begin(row), std::end(row), kNone);
}

void PoolResource::insert_free(int owner, uint32_t b) {
  StreamLists& lists = streams_[size_t(owner)];
  Block& block = blocks_[b];
  int f, s;
  size_class(block.size >> kUnitShift, &f, &s);
  block.free = true;
  block.owner = owner;
  block.prev_free = kNone;
  block.next_free = lists.heads[f][s];
  if (block.next_free != kNone) blocks_[block.next_free].prev_free = b;
  lists.heads[f][s] = b;
  lists.first_bitmap |= uint64_t(1) << f;
  lists.second_bitmap[f] |= 1u << s;
  lists.free_blocks++;
  stats_.free_bytes += block.size;
}

void PoolResource::remove_free(uint32_t b) {
  Block& block = blocks_[b];
  StreamLists& lists = streams_[size_t(block.owner)];
  int f, s;
  size_class(block.size >> kUnitShift, &f, &s);
  if (block.prev_free != kNone)
    blocks_[block.prev_free].next_free = block.next_free;
  else
    lists.heads[f][s] = block.next_free;
  if (block.next_free != kNone) blocks_[block.next_free].prev_free = block.prev_free;
  if (lists.heads[f][s] == kNone) {
    lists.second_bitmap[f] &= ~(1u << s);
    if (!lists.second_bitmap[f]) lists.first_bitmap &= ~(uint64_t(1) << f);
  }
  block.free = false;
  lists.free_blocks--;
  stats_.free_bytes -= block.size;
}

uint32_t PoolResource::find_fit(int owner, size_t size) const {
  const StreamLists& lists = streams_[size_t(owner)];
  int f, s;
  search_class(size >> kUnitShift, &f, &s);
  if (f >= kFirstLevels) return kNone;
  uint32_t second = lists.second_bitmap[f] & (~0u << s);
  if (!second) {
    const uint64_t first =
        f + 1 < kFirstLevels ? lists.first_bitmap & (~uint64_t(0) << (f + 1)) : 0;
    if (!first) return kNone;
    f = __builtin_ctzll(first);
    second = lists.second_bitmap[f];
  }
  return lists.heads[f][__builtin_ctz(second)];
}

// ---- blocks ---------------------------------------------------------------

uint32_t PoolResource::new_block() {
  if (!spare_blocks_.empty()) {
    const uint32_t b = spare_blocks_.back();
    spare_blocks_.pop_back();
    return b;
  }
  blocks_.push_back({});
  return uint32_t(blocks_.size() - 1);
}

uint32_t PoolResource::coalesce(uint32_t b) {
  const int owner = blocks_[b].owner;
  // Free neighbours of the same stream merge; so do never-used ones (they
  // carry no stream order). The merged block belongs to `owner`.
  auto mergeable = [&](uint32_t n) {
    return n != kNone && blocks_[n].free &&
           (blocks_[n].owner == owner || streams_[size_t(blocks_[n].owner)].fresh);
  };
  const uint32_t next = blocks_[b].next_phys;
  if (mergeable(next)) {
    remove_free(next);
    blocks_[b].size += blocks_[next].size;
    blocks_[b].next_phys = blocks_[next].next_phys;
    if (blocks_[b].next_phys != kNone) blocks_[blocks_[b].next_phys].prev_phys = b;
    spare_blocks_.push_back(next);
  }
  const uint32_t prev = blocks_[b].prev_phys;
  if (mergeable(prev)) {
    remove_free(prev);
    blocks_[prev].size += blocks_[b].size;
    blocks_[prev].next_phys = blocks_[b].next_phys;
    if (blocks_[prev].next_phys != kNone) blocks_[blocks_[prev].next_phys].prev_phys = prev;
    blocks_[prev].owner = owner;
    spare_blocks_.push_back(b);
    b = prev;
  }
  return b;
}

int PoolResource::lists_of(StreamHandle stream) {
  if (last_stream_ >= 0 && streams_[size_t(last_stream_)].stream == stream) return last_stream_;
  for (size_t i = 0; i < streams_.size(); ++i)
    if (streams_[i].stream == stream && !streams_[i].fresh) return last_stream_ = int(i);
  streams_.emplace_back();
  streams_.back().stream = stream;
  return last_stream_ = int(streams_.size() - 1);
}

// `taker` waits (GPU-side) for everything given so far to `owner`'s stream.
void PoolResource::wait_for(int taker, int owner) {
  StreamLists& o = streams_[size_t(owner)];
  if (o.fresh) return;  // never used: nothing to wait for
  stats_.stream_waits++;
  if (!events_) return;  // host memory: nothing runs asynchronously
  if (!o.event) o.event = events_->create();
  events_->record(o.event, o.stream);
  events_->wait(streams_[size_t(taker)].stream, o.event);
}

uint32_t PoolResource::take_from_other_stream(int taker, size_t size) {
  for (size_t t = 0; t < streams_.size(); ++t) {
    if (int(t) == taker || !streams_[t].free_blocks) continue;
    const uint32_t b = find_fit(int(t), size);
    if (b != kNone) {
      wait_for(taker, int(t));
      return b;
    }
  }
  return kNone;
}

uint32_t PoolResource::adopt_all_free_blocks(int taker, size_t size) {
  bool any = false;
  for (size_t t = 0; t < streams_.size(); ++t) {
    if (int(t) == taker || !streams_[t].free_blocks) continue;
    any = true;
    wait_for(taker, int(t));
    while (streams_[t].first_bitmap) {
      const int f = __builtin_ctzll(streams_[t].first_bitmap);
      const uint32_t b = streams_[t].heads[f][__builtin_ctz(streams_[t].second_bitmap[f])];
      remove_free(b);
      blocks_[b].owner = taker;
      insert_free(taker, coalesce(b));
    }
  }
  return any ? find_fit(taker, size) : kNone;
}

uint32_t PoolResource::grow(int owner, size_t size, size_t requested, bool exact) {
  if (!options_.grow && !regions_.empty()) throw OutOfMemory(requested, snapshot(), name());
  // Geometric growth: a region proportional to what is reserved, capped.
  const size_t room =
      options_.maximum_bytes - std::min(options_.maximum_bytes, stats_.bytes_reserved);
  if (size > room) throw OutOfMemory(requested, snapshot(), name());
  const double scaled = double(stats_.bytes_reserved) * (options_.growth_factor - 1);
  size_t region = exact ? size : std::max(size, options_.minimum_region);
  if (!exact && scaled > double(region)) region = scaled < double(room) ? size_t(scaled) : room;
  region = std::max(size, std::min(region, room) / kAlignment * kAlignment);
  char* base = nullptr;
  try {
    base = static_cast<char*>(upstream_.allocate(region));
  } catch (const OutOfMemory& e) {
    // The geometric step does not fit the device: the exact request may.
    if (region == size) throw OutOfMemory(requested, snapshot(), name(), e.hint);
    try {
      region = size;
      base = static_cast<char*>(upstream_.allocate(region));
    } catch (const OutOfMemory& again) {
      throw OutOfMemory(requested, snapshot(), name(), again.hint);
    }
  }
  regions_.push_back({base, region});
  stats_.upstream_allocations++;
  stats_.bytes_reserved += region;
  stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_reserved);
  const uint32_t b = new_block();
  blocks_[b] = Block{base, region, kNone, kNone, kNone, kNone, owner, true};
  insert_free(owner, b);
  return b;
}

// ---- the resource ---------------------------------------------------------

PoolResource::PoolResource(MemoryResource& upstream, const PoolOptions& options,
                           StreamEvents* events)
    : upstream_(upstream), options_(options), events_(events) {
  streams_.reserve(8);
  if (options_.initial_bytes > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    // The reserve has never been used by any stream: every stream takes from
    // it without waiting.
    streams_.emplace_back();
    streams_.back().fresh = true;
    const size_t bytes = align_to(std::min(options_.initial_bytes, SIZE_MAX / 2), kAlignment);
    grow(0, bytes, bytes, /*exact=*/true);
  }
}

PoolResource::~PoolResource() {
  for (auto& lists : streams_)
    if (lists.event) events_->destroy(lists.event);
  for (const auto& [base, size] : regions_) upstream_.deallocate(base, size);
}

void* PoolResource::do_allocate(size_t bytes, StreamHandle stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes > SIZE_MAX / 2) throw OutOfMemory(bytes, snapshot(), name());  // never wrap
  const size_t size = align_to(std::max<size_t>(bytes, 1), kAlignment);
  const int taker = lists_of(stream);
  bool from_pool = true;
  uint32_t b = find_fit(taker, size);
  if (b == kNone) b = take_from_other_stream(taker, size);
  if (b == kNone) b = adopt_all_free_blocks(taker, size);
  if (b == kNone) {
    b = grow(taker, size, bytes);
    from_pool = false;
  }
  const int owner = blocks_[b].owner;
  remove_free(b);
  if (blocks_[b].size > size) {
    // Split: the tail stays free in the lists it came from (if it came from
    // another stream, that stream may still be using the tail's memory).
    const uint32_t tail = new_block();
    Block& block = blocks_[b];
    blocks_[tail] =
        Block{block.ptr + size, block.size - size, b, block.next_phys, kNone, kNone, owner, true};
    if (block.next_phys != kNone) blocks_[block.next_phys].prev_phys = tail;
    block.next_phys = tail;
    block.size = size;
    insert_free(owner, tail);
  }
  Block& block = blocks_[b];
  block.owner = -1;
  in_use_.insert(block.ptr, b);
  stats_.allocations++;
  if (from_pool) stats_.served_from_pool++;
  stats_.bytes_in_use += size;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return block.ptr;
}

void PoolResource::do_deallocate(void* p, size_t bytes, StreamHandle stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint32_t b = in_use_.find(static_cast<char*>(p));
  if (b == kNone)
    throw std::logic_error("pool: deallocate of a pointer it does not own (or twice)");
  if (bytes > SIZE_MAX / 2 || blocks_[b].size != align_to(std::max<size_t>(bytes, 1), kAlignment))
    throw std::logic_error("pool: deallocate with a size other than the allocation's");
  in_use_.erase(static_cast<char*>(p));
  stats_.deallocations++;
  stats_.bytes_in_use -= blocks_[b].size;
  const int owner = lists_of(stream);
  blocks_[b].owner = owner;
  insert_free(owner, coalesce(b));
}

size_t PoolResource::largest_free_block() const {
  size_t largest = 0;
  for (const auto& lists : streams_) {
    if (!lists.first_bitmap) continue;
    const int f = msb(lists.first_bitmap);
    for (uint32_t b = lists.heads[f][31 - __builtin_clz(lists.second_bitmap[f])]; b != kNone;
         b = blocks_[b].next_free)
      largest = std::max(largest, blocks_[b].size);
  }
  return largest;
}

MemoryStats PoolResource::snapshot() const {
  MemoryStats s = stats_;
  s.pooled = true;
  s.largest_free_block = largest_free_block();
  return s;
}

MemoryStats PoolResource::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return snapshot();
}

size_t PoolResource::free_block_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const auto& lists : streams_) n += lists.free_blocks;
  return n;
}

size_t PoolResource::region_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return regions_.size();
}

}  // namespace histocnn
