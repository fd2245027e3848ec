// The input written to a scratch file of this process, for the targets whose
// decoder reads from a path (libtiff). Returns the path, or "" when the
// file cannot be written (the input is then skipped).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

inline std::string write_scratch_file(const char* name, const uint8_t* data, size_t size) {
  const std::string path = std::string(name) + "-" + std::to_string(::getpid()) + ".tif";
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return "";
  const bool written = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && written ? path : "";
}
