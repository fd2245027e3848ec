// Allocator selection: flag > HISTOCNN_FLAGS > histocnn.toml > default, with
// CNMeM's meaning of the pool value, and errors naming their source.
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "memory/memory_config.h"
#include "test_util.h"

namespace histocnn {
namespace {

TEST(MemoryConfig, PrecedenceIsFlagThenEnvironmentThenFile) {
  testing::TempDir dir;
  const std::string file = dir / "histocnn.toml";
  write_file_atomically(file, "[gpu]\nallocator = \"async\"\nmem_pool = 0.5\n");
  EXPECT_EQ(resolve_memory_config({}, nullptr, "").allocator, "plan");
  EXPECT_EQ(resolve_memory_config({}, nullptr, "").source, "default");
  MemoryConfig c = resolve_memory_config({}, nullptr, file);
  EXPECT_EQ(c.allocator, "async");
  EXPECT_EQ(c.source, file);
  c = resolve_memory_config({}, "allocator=direct", file);
  EXPECT_EQ(c.allocator, "direct");
  EXPECT_EQ(c.source, "HISTOCNN_FLAGS");
  MemoryFlags flags;
  flags.allocator = "pool";
  c = resolve_memory_config(flags, "allocator=direct", file);
  EXPECT_EQ(c.allocator, "pool");
  EXPECT_DOUBLE_EQ(c.gpu_mem_pool, 0.5) << "the pool size falls through from the file";
}

TEST(MemoryConfig, CnmemValueAloneSwitchesThePoolLikeTheano) {
  MemoryFlags off;
  off.gpu_mem_pool = 0;
  EXPECT_EQ(resolve_memory_config(off, nullptr, "").allocator, "direct");
  MemoryFlags on;
  on.gpu_mem_pool = 4096;
  const MemoryConfig c = resolve_memory_config(on, nullptr, "");
  EXPECT_EQ(c.allocator, "pool");
  EXPECT_DOUBLE_EQ(c.gpu_mem_pool, 4096);
  EXPECT_EQ(resolve_memory_config({}, "lib.cnmem=1", "").allocator, "pool");
}

TEST(MemoryConfig, InvalidValuesNameTheirSource) {
  testing::TempDir dir;
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  MemoryFlags bad;
  bad.allocator = "cnmem";
  EXPECT_NE(message([&] {
              resolve_memory_config(bad, nullptr, "");
            }).find("--allocator: allocator 'cnmem'"),
            std::string::npos);
  MemoryFlags negative;
  negative.gpu_mem_pool = -1;
  EXPECT_NE(message([&] { resolve_memory_config(negative, nullptr, ""); }).find("--gpu-mem-pool"),
            std::string::npos);
  EXPECT_NE(
      message([&] { resolve_memory_config({}, "gpu_mem_pool=lots", ""); }).find("HISTOCNN_FLAGS"),
      std::string::npos);
  EXPECT_NE(
      message([&] { resolve_memory_config({}, "colour=blue", ""); }).find("unknown key 'colour'"),
      std::string::npos);
  const std::string file = dir / "histocnn.toml";
  write_file_atomically(file, "[gpu\nallocator = 1\n");
  EXPECT_NE(
      message([&] { resolve_memory_config({}, nullptr, file); }).find("invalid TOML at line 1"),
      std::string::npos);
  write_file_atomically(file, "[gpu]\nallocator = 3\n");
  EXPECT_NE(message([&] { resolve_memory_config({}, nullptr, file); }).find("must be a string"),
            std::string::npos);
}

}  // namespace
}  // namespace histocnn
