#include "core/machine_memory.h"

#include <unistd.h>

#include <cstdio>

#include "core/error.h"

namespace histocnn {

uint64_t physical_memory_bytes() {
  // Read once: HostResource asks on every allocation, and sysconf is a syscall.
  static const uint64_t bytes =
      uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGE_SIZE));
  return bytes;
}

std::string gigabytes(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f GB", double(bytes) / 1e9);
  return text;
}

void require_fits_in_memory(uint64_t bytes, const std::string& what, const std::string& advice) {
  const uint64_t machine = physical_memory_bytes();
  if (bytes <= machine) return;
  fail(what + " need " + gigabytes(bytes) + ", more than this machine's " + gigabytes(machine) +
       " of memory" + advice);
}

}  // namespace histocnn
