// The input written to a scratch file of this process, for the targets whose
// decoder reads from a path (libtiff). Returns the path, or "" when the
// file cannot be written (the input is then skipped).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

// The input written to `path`; `path`, or "" when it cannot be written.
inline std::string write_input_to(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return "";
  const bool written = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && written ? path : "";
}

inline std::string write_scratch_file(const char* name, const uint8_t* data, size_t size) {
  return write_input_to(std::string(name) + "-" + std::to_string(::getpid()) + ".tif", data, size);
}
