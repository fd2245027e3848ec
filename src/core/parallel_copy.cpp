#include "core/parallel_copy.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace histocnn {

void parallel_copy(void* dst, const void* src, size_t bytes, int threads, size_t min_chunk) {
  const size_t most = std::max<size_t>(1, bytes / std::max<size_t>(1, min_chunk));
  const int parts = int(std::min<size_t>(size_t(std::max(1, threads)), most));
  if (parts < 2) {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return;
  }
  // Chunk boundaries on 64-byte lines, so no two threads write one line.
  const size_t chunk = ((bytes + size_t(parts) - 1) / size_t(parts) + 63) / 64 * 64;
  auto* out = static_cast<uint8_t*>(dst);
  const auto* in = static_cast<const uint8_t*>(src);
#pragma omp parallel for num_threads(parts) schedule(static)
  for (int p = 0; p < parts; ++p) {
    const size_t begin = std::min(bytes, size_t(p) * chunk);
    const size_t end = std::min(bytes, begin + chunk);
    if (end > begin) std::memcpy(out + begin, in + begin, end - begin);
  }
}

}  // namespace histocnn
