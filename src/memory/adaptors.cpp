#include "memory/adaptors.h"

#include <chrono>
#include <cinttypes>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>
#include <unordered_map>

#include "core/error.h"

namespace histocnn {

// ---- statistics -----------------------------------------------------------

void* StatisticsAdaptor::do_allocate(size_t bytes, StreamHandle stream) {
  void* p = upstream_.allocate(bytes, stream);
  allocations_.fetch_add(1, std::memory_order_relaxed);
  const size_t now = in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  size_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return p;
}

void StatisticsAdaptor::do_deallocate(void* p, size_t bytes, StreamHandle stream) {
  upstream_.deallocate(p, bytes, stream);
  deallocations_.fetch_add(1, std::memory_order_relaxed);
  in_use_.fetch_sub(bytes, std::memory_order_relaxed);
}

MemoryStats StatisticsAdaptor::stats() const {
  MemoryStats s = upstream_.stats();
  s.allocations = allocations_.load();
  s.deallocations = deallocations_.load();
  s.bytes_in_use = in_use_.load();
  s.peak_bytes_in_use = peak_.load();
  if (!s.pooled) {
    // Every allocation is its own device malloc; the reserve is what is in use.
    s.upstream_allocations = s.allocations;
    s.upstream_deallocations = s.deallocations;
    s.served_from_pool = 0;
    s.bytes_reserved = s.bytes_in_use;
    s.peak_bytes_reserved = s.peak_bytes_in_use;
  }
  return s;
}

// ---- limit ----------------------------------------------------------------

void* LimitAdaptor::do_allocate(size_t bytes, StreamHandle stream) {
  const size_t size =
      bytes > SIZE_MAX / 2 ? SIZE_MAX / 2 : align_to(std::max<size_t>(bytes, 1), kAlignment);
  size_t used = in_use_.load(std::memory_order_relaxed);
  do {
    if (size > limit_ - std::min(limit_, used)) {
      MemoryStats s = upstream_.stats();
      s.bytes_in_use = used;
      throw OutOfMemory(
          bytes, s, name(),
          "the memory limit is " + std::to_string(limit_ >> 20) + " MB (--gpu-mem-limit)");
    }
  } while (!in_use_.compare_exchange_weak(used, used + size, std::memory_order_relaxed));
  try {
    return upstream_.allocate(bytes, stream);
  } catch (...) {
    in_use_.fetch_sub(size, std::memory_order_relaxed);
    throw;
  }
}

void LimitAdaptor::do_deallocate(void* p, size_t bytes, StreamHandle stream) {
  upstream_.deallocate(p, bytes, stream);
  in_use_.fetch_sub(align_to(std::max<size_t>(bytes, 1), kAlignment), std::memory_order_relaxed);
}

// ---- logging --------------------------------------------------------------

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

LoggingAdaptor::LoggingAdaptor(MemoryResource& upstream, const std::string& path)
    : upstream_(upstream), path_(path), file_(std::fopen(path.c_str(), "w")), start_ns_(now_ns()) {
  require(file_ != nullptr, path + ": cannot write the allocation log: " + std::strerror(errno));
  std::fprintf(file_, "# histocnn allocation log v1: op,thread,stream,pointer,bytes,nanoseconds\n");
}

// A destructor cannot throw: a log that could not be written whole (a full
// disk) is reported on stderr, and its cut last line is refused by
// read_allocation_log, so it is never replayed as if it were whole.
LoggingAdaptor::~LoggingAdaptor() {
  const bool written = std::fflush(file_) == 0 && !std::ferror(file_);
  const int error = errno;
  if (std::fclose(file_) == 0 && written && !write_failed_) return;
  std::fprintf(stderr, "histocnn: %s: the allocation log is incomplete: %s\n", path_.c_str(),
               std::strerror(write_failed_ ? write_errno_ : error));
}

void LoggingAdaptor::write(char op, StreamHandle stream, const void* p, size_t bytes) {
  const uint64_t thread = std::hash<std::thread::id>()(std::this_thread::get_id());
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::fprintf(file_, "%c,%" PRIu64 ",%#" PRIxPTR ",%#" PRIxPTR ",%zu,%" PRId64 "\n", op,
                   thread, reinterpret_cast<uintptr_t>(stream), reinterpret_cast<uintptr_t>(p),
                   bytes, now_ns() - start_ns_) < 0 &&
      !write_failed_) {
    write_failed_ = true;
    write_errno_ = errno;
  }
}

void* LoggingAdaptor::do_allocate(size_t bytes, StreamHandle stream) {
  void* p = upstream_.allocate(bytes, stream);
  write('a', stream, p, bytes);
  return p;
}

void LoggingAdaptor::do_deallocate(void* p, size_t bytes, StreamHandle stream) {
  write('f', stream, p, bytes);  // before: the pointer may be handed out again at once
  upstream_.deallocate(p, bytes, stream);
}

std::vector<AllocationEvent> read_allocation_log(const std::string& path) {
  std::ifstream in(path);
  require(in.good(), path + ": cannot read the allocation log");
  std::vector<AllocationEvent> events;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // Every line is written whole with its newline: one without it was cut
    // (the run was killed, or the disk filled), maybe inside a number.
    require(!in.eof(), path + ":" + std::to_string(number) +
                           ": the last line is cut short (the log was not finished)");
    if (line.empty() || line[0] == '#') continue;
    char op = 0;
    uint64_t thread = 0;
    uintptr_t stream = 0, pointer = 0;
    size_t bytes = 0;
    int64_t ns = 0;
    int used = 0;
    const int n =
        std::sscanf(line.c_str(), "%c,%" SCNu64 ",%" SCNxPTR ",%" SCNxPTR ",%zu,%" SCNd64 "%n", &op,
                    &thread, &stream, &pointer, &bytes, &ns, &used);
    require(n == 6 && (op == 'a' || op == 'f') && size_t(used) == line.size(),
            path + ":" + std::to_string(number) + ": not an allocation log line");
    events.push_back({op == 'a', thread, stream, pointer, bytes, ns});
  }
  return events;
}

void replay_allocation_log(const std::vector<AllocationEvent>& events, MemoryResource& resource) {
  struct Live {
    void* p;
    size_t bytes;
    StreamHandle stream;
  };
  std::unordered_map<uintptr_t, Live> live;
  for (const auto& e : events) {
    auto stream = reinterpret_cast<StreamHandle>(e.stream);
    if (e.allocate) {
      live[e.pointer] = {resource.allocate(e.bytes, stream), e.bytes, stream};
    } else {
      auto it = live.find(e.pointer);
      if (it == live.end())
        throw std::logic_error("allocation log frees a pointer it never allocated");
      resource.deallocate(it->second.p, it->second.bytes, stream);
      live.erase(it);
    }
  }
  for (auto& [old, l] : live) resource.deallocate(l.p, l.bytes, l.stream);
}

}  // namespace histocnn
