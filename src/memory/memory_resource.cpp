#include "memory/memory_resource.h"

#include <algorithm>
#include <cstdio>

namespace histocnn {

nlohmann::json MemoryStats::to_json() const {
  return {{"bytes_in_use", bytes_in_use},
          {"peak_bytes_in_use", peak_bytes_in_use},
          {"bytes_reserved", bytes_reserved},
          {"peak_bytes_reserved", peak_bytes_reserved},
          {"allocations", allocations},
          {"deallocations", deallocations},
          {"device_malloc_calls", upstream_allocations},
          {"device_free_calls", upstream_deallocations},
          {"served_from_pool", served_from_pool},
          {"stream_waits", stream_waits},
          {"largest_free_block", largest_free_block},
          {"free_bytes", free_bytes},
          {"fragmentation", fragmentation()}};
}

std::string MemoryStats::summary() const {
  char line[320];
  std::snprintf(
      line, sizeof line,
      "in use %.1f MB (peak %.1f MB), reserved %.1f MB (peak %.1f MB), %llu allocations "
      "(%llu from the pool), %llu device mallocs, %llu frees, largest free block %.1f MB, "
      "fragmentation %.3f",
      bytes_in_use / 1e6, peak_bytes_in_use / 1e6, bytes_reserved / 1e6, peak_bytes_reserved / 1e6,
      (unsigned long long)allocations, (unsigned long long)served_from_pool,
      (unsigned long long)upstream_allocations, (unsigned long long)upstream_deallocations,
      largest_free_block / 1e6, fragmentation());
  return line;
}

namespace {
std::string oom_message(size_t requested, const MemoryStats& s, const std::string& resource,
                        const std::string& hint) {
  char line[400];
  std::snprintf(line, sizeof line,
                "out of memory (%s): requested %.1f MB; reserved %.1f MB, in use %.1f MB, "
                "largest free block %.1f MB, fragmentation %.3f",
                resource.c_str(), requested / 1e6, s.bytes_reserved / 1e6, s.bytes_in_use / 1e6,
                s.largest_free_block / 1e6, s.fragmentation());
  return hint.empty() ? std::string(line) : line + ("; " + hint);
}
}  // namespace

OutOfMemory::OutOfMemory(size_t requested_bytes, const MemoryStats& s, const std::string& resource,
                         const std::string& hint)
    : Error(oom_message(requested_bytes, s, resource, hint)),
      requested(requested_bytes),
      stats(s),
      hint(hint) {}

}  // namespace histocnn
