// Adaptors: wrappers that add one concern to any resource (after RMM's
// statistics_resource_adaptor, logging_resource_adaptor and
// limiting_resource_adaptor). Each forwards to an upstream it does not own,
// keeps the upstream's memory space and stream semantics, and is thread-safe.
#pragma once

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "memory/memory_resource.h"

namespace histocnn {

// Counts calls and bytes in use (requested bytes) and merges them with the
// upstream's own view of its reserve: for a pooled upstream (pool, async) the
// reserve and its upstream calls come from it; otherwise every allocation is a
// device malloc and the reserve is what is in use.
class StatisticsAdaptor final : public MemoryResource {
 public:
  explicit StatisticsAdaptor(MemoryResource& upstream) : upstream_(upstream) {}
  MemoryStats stats() const override;
  std::string name() const override { return upstream_.name(); }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  MemoryResource& upstream_;
  std::atomic<uint64_t> allocations_{0}, deallocations_{0};
  std::atomic<size_t> in_use_{0}, peak_{0};
};

// Refuses allocations that would take the bytes in use past `limit_bytes`,
// with OutOfMemory: emulates a smaller device (a 4 GB GTX-980 on a larger
// card: --gpu-mem-limit 4GB). Put it under a pool to bound the pool's reserve.
class LimitAdaptor final : public MemoryResource {
 public:
  LimitAdaptor(MemoryResource& upstream, size_t limit_bytes)
      : upstream_(upstream), limit_(limit_bytes) {}
  MemoryStats stats() const override { return upstream_.stats(); }
  std::string name() const override { return upstream_.name(); }
  size_t limit() const { return limit_; }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  MemoryResource& upstream_;
  const size_t limit_;
  std::atomic<size_t> in_use_{0};
};

// One line per call, CSV, replayable with replay_allocation_log:
//   # histocnn allocation log v1: op,thread,stream,pointer,bytes,nanoseconds
//   a,0,0x0,0x7f0000000000,4096,1200
//   f,0,0x0,0x7f0000000000,4096,1800
// The file is written as the run goes (buffered, flushed at destruction; a
// write that failed is reported on stderr then); a failed allocation is not
// logged (it returned nothing).
class LoggingAdaptor final : public MemoryResource {
 public:
  LoggingAdaptor(MemoryResource& upstream, const std::string& path);  // throws naming path
  ~LoggingAdaptor() override;
  LoggingAdaptor(const LoggingAdaptor&) = delete;
  LoggingAdaptor& operator=(const LoggingAdaptor&) = delete;
  MemoryStats stats() const override { return upstream_.stats(); }
  std::string name() const override { return upstream_.name(); }

 private:
  void* do_allocate(size_t bytes, StreamHandle stream) override;
  void do_deallocate(void* p, size_t bytes, StreamHandle stream) override;
  void write(char op, StreamHandle stream, const void* p, size_t bytes);
  MemoryResource& upstream_;
  std::string path_;
  std::FILE* file_;
  std::mutex mutex_;
  int64_t start_ns_;
  bool write_failed_ = false;  // guarded by mutex_
  int write_errno_ = 0;
};

struct AllocationEvent {
  bool allocate;
  uint64_t thread;
  uintptr_t stream, pointer;
  size_t bytes;
  int64_t nanoseconds;
};
// Reads a log written by LoggingAdaptor; throws histocnn::Error naming the
// file and line on anything malformed, and on a last line cut short.
std::vector<AllocationEvent> read_allocation_log(const std::string& path);
// Replays the events in order on `resource` (pointers of the log mapped to the
// new ones, streams passed through); frees anything the log left live at the
// end. Throws std::logic_error when the log frees a pointer it never allocated.
void replay_allocation_log(const std::vector<AllocationEvent>& events, MemoryResource& resource);

}  // namespace histocnn
