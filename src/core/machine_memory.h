// The machine's memory, and requests too large for it refused with their
// numbers before they are tried: Linux overcommits, so an allocation larger
// than the machine would succeed and the process be killed later, mid-run.
#pragma once

#include <cstdint>
#include <string>

namespace histocnn {

// Physical memory in bytes (sysconf).
uint64_t physical_memory_bytes();

// "12.3 GB": bytes for messages (decimal units).
std::string gigabytes(uint64_t bytes);

// Throws histocnn::Error "<what> need(s) N GB, more than this machine's M GB
// of memory<advice>" when `bytes` exceed the physical memory.
void require_fits_in_memory(uint64_t bytes, const std::string& what, const std::string& advice);

}  // namespace histocnn
