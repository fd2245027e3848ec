#include "memory/pool_resource.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace histocnn {

namespace {
size_t align_up(size_t v) {
  return (v + kAlignment - 1) & ~(kAlignment - 1);
}
}  // namespace

size_t cnmem_reserve_bytes(double value, size_t device_total, const std::string& flag) {
  require(std::isfinite(value) && value >= 0,
          flag + ": must be 0 (off), a fraction in (0, 1] or a size in MB (> 1)");
  if (value == 0) return 0;
  if (value <= 1) return align_up(size_t(double(device_total) * std::min(value, 0.95)));
  const size_t bytes = size_t(value * 1024 * 1024);
  require(device_total == 0 || bytes <= device_total,
          flag + ": " + std::to_string(size_t(value)) + " MB exceeds the device's " +
              std::to_string(device_total >> 20) + " MB");
  return align_up(bytes);
}

struct PoolResource::Event {
  StreamHandle stream;
  void* handle;
  StreamEvents* events;
  uint64_t sequence;  // later events on one stream supersede earlier ones
  Event(StreamHandle s, void* h, StreamEvents* e, uint64_t q)
      : stream(s), handle(h), events(e), sequence(q) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() { events->release(handle); }
};

namespace {
// Keeps, per stream, only the newest event: waiting for it implies the rest.
template <typename Pending>
void keep_newest_per_stream(Pending& pending) {
  for (size_t i = 0; i < pending.size(); ++i)
    for (size_t j = pending.size(); j-- > i + 1;)
      if (pending[j]->stream == pending[i]->stream) {
        if (pending[j]->sequence > pending[i]->sequence) std::swap(pending[i], pending[j]);
        pending.erase(pending.begin() + long(j));
      }
}
}  // namespace

PoolResource::PoolResource(MemoryResource& upstream, const PoolOptions& options,
                           StreamEvents* events)
    : upstream_(upstream), options_(options), events_(events) {
  if (options_.initial_bytes > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    add_region(align_up(options_.initial_bytes));
  }
}

PoolResource::~PoolResource() {
  blocks_.clear();  // drops pending events before their owner goes
  for (const auto& [base, size] : regions_) upstream_.deallocate(base, size);
}

void PoolResource::add_region(size_t bytes) {
  if (stats_.bytes_reserved + bytes > options_.maximum_bytes)
    throw OutOfMemory(bytes, snapshot(), name());
  char* base;
  try {
    base = static_cast<char*>(upstream_.allocate(bytes));
  } catch (const OutOfMemory&) {
    throw OutOfMemory(bytes, snapshot(), name());
  }
  regions_.push_back({base, bytes});
  stats_.upstream_allocations++;
  stats_.bytes_reserved += bytes;
  stats_.peak_bytes_reserved = std::max(stats_.peak_bytes_reserved, stats_.bytes_reserved);
  auto it = blocks_.emplace(base, Block{bytes, int(regions_.size()) - 1, true, nullptr, {}}).first;
  insert_free(it);
}

void PoolResource::insert_free(BlockMap::iterator it) {
  free_by_size_.insert({it->second.size, it->first});
  stats_.free_bytes += it->second.size;
}

void PoolResource::erase_free(BlockMap::iterator it) {
  free_by_size_.erase({it->second.size, it->first});
  stats_.free_bytes -= it->second.size;
}

// Merges a free block with its free neighbours in the same region.
PoolResource::BlockMap::iterator PoolResource::coalesce(BlockMap::iterator it) {
  auto absorb = [&](BlockMap::iterator into, BlockMap::iterator from) {
    into->second.size += from->second.size;
    for (auto& e : from->second.pending) into->second.pending.push_back(std::move(e));
    keep_newest_per_stream(into->second.pending);
    blocks_.erase(from);
  };
  auto next = std::next(it);
  if (next != blocks_.end() && next->second.free && next->second.region == it->second.region) {
    erase_free(next);
    absorb(it, next);
  }
  if (it != blocks_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.free && prev->second.region == it->second.region) {
      erase_free(prev);
      absorb(prev, it);
      it = prev;
    }
  }
  return it;
}

void* PoolResource::do_allocate(size_t bytes, StreamHandle stream) {
  const size_t size = align_up(std::max<size_t>(bytes, 1));
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::find(streams_.begin(), streams_.end(), stream) == streams_.end()) {
    // A new stream: order it after everything freed so far on the others (a
    // single-stream run records no events at all).
    if (events_)
      for (StreamHandle other : streams_) {
        void* e = events_->record(other);
        events_->wait(stream, e);
        events_->release(e);
      }
    streams_.push_back(stream);
  }
  auto fit = free_by_size_.lower_bound({size, nullptr});
  bool from_pool = fit != free_by_size_.end();
  if (!from_pool) {
    if (!options_.grow && !regions_.empty()) throw OutOfMemory(bytes, snapshot(), name());
    // Geometric growth: a region proportional to what is reserved, capped.
    size_t region =
        std::max({size, options_.minimum_region,
                  size_t(double(stats_.bytes_reserved) * (options_.growth_factor - 1))});
    if (options_.maximum_bytes != SIZE_MAX)
      region = std::min(
          region, options_.maximum_bytes - std::min(options_.maximum_bytes, stats_.bytes_reserved));
    if (region < size) throw OutOfMemory(bytes, snapshot(), name());
    add_region(align_up(region));
    fit = free_by_size_.lower_bound({size, nullptr});
  }
  auto it = blocks_.find(fit->second);
  erase_free(it);
  Block& block = it->second;
  // Stream safety: wait (GPU-side) for frees recorded on other streams.
  for (auto& e : block.pending)
    if (e->stream != stream && events_) events_->wait(stream, e->handle);
  if (block.size > size) {
    // Split: the tail stays free and keeps the pending events (other streams
    // may still be using that memory).
    Block tail{block.size - size, block.region, true, block.stream, block.pending};
    auto tail_it = blocks_.emplace(it->first + size, std::move(tail)).first;
    insert_free(tail_it);
    block.size = size;
  }
  block.free = false;
  block.stream = stream;
  block.pending.clear();
  stats_.allocations++;
  if (from_pool) stats_.served_from_pool++;
  stats_.bytes_in_use += size;
  stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
  return it->first;
}

void PoolResource::do_deallocate(void* p, size_t bytes, StreamHandle stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = blocks_.find(static_cast<char*>(p));
  if (it == blocks_.end() || it->second.free)
    throw std::logic_error("pool: deallocate of a pointer it does not own (or twice)");
  if (it->second.size != align_up(std::max<size_t>(bytes, 1)))
    throw std::logic_error("pool: deallocate with a size other than the allocation's");
  Block& block = it->second;
  block.free = true;
  stats_.deallocations++;
  stats_.bytes_in_use -= block.size;
  if (events_ && streams_.size() > 1) {
    block.pending.push_back(
        std::make_shared<Event>(stream, events_->record(stream), events_, ++event_sequence_));
    keep_newest_per_stream(block.pending);
  }
  block.stream = stream;
  insert_free(coalesce(it));
}

MemoryStats PoolResource::snapshot() const {
  MemoryStats s = stats_;
  s.largest_free_block = free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
  return s;
}

MemoryStats PoolResource::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return snapshot();
}

size_t PoolResource::free_block_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return free_by_size_.size();
}

size_t PoolResource::region_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return regions_.size();
}

}  // namespace histocnn
