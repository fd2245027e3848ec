// parallel_copy: the bytes of one memcpy, whatever the split, and nothing
// written past the end.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "core/parallel_copy.h"

namespace histocnn {
namespace {

TEST(ParallelCopy, CopiesEveryByteWhateverTheSplitAndNothingPastTheEnd) {
  for (size_t bytes :
       {size_t(0), size_t(1), size_t(63), size_t(64), size_t(1000), size_t(4097), size_t(100003)}) {
    std::vector<uint8_t> src(bytes);
    for (size_t i = 0; i < bytes; ++i) src[i] = uint8_t(i * 131 + 7);
    for (int threads : {0, 1, 2, 3, 8}) {
      for (size_t min_chunk : {size_t(1), size_t(100), size_t(4) << 20}) {
        std::vector<uint8_t> dst(bytes + 64, 0xAB);
        parallel_copy(dst.data(), src.data(), bytes, threads, min_chunk);
        EXPECT_TRUE(std::equal(src.begin(), src.end(), dst.begin()))
            << bytes << " bytes, " << threads << " threads, chunks of at least " << min_chunk;
        for (size_t i = bytes; i < dst.size(); ++i)
          ASSERT_EQ(dst[i], 0xAB) << "written past the end at " << i;
      }
    }
  }
}

}  // namespace
}  // namespace histocnn
