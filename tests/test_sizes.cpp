// Sizes from specs, flags and files never overflow: each product is checked
// and an impossible size is a one-line error naming what it sizes.
#include <gtest/gtest.h>

#include <cstring>

#include "core/atomic_file.h"
#include "core/checked.h"
#include "core/error.h"
#include "memory/memory_engine.h"
#include "memory/pool_resource.h"
#include "nn/safetensors.h"
#include "nn/spec.h"
#include "test_util.h"

namespace histocnn {
namespace {

TEST(CheckedProduct, RejectsOverflowAndLimits) {
  EXPECT_EQ(checked_product({3, 4, 5}, "x"), 60);
  EXPECT_THROW(checked_product({int64_t(1) << 32, int64_t(1) << 32}, "x"), Error);
  EXPECT_THROW(checked_product({10, 10}, "x", 99), Error);
  EXPECT_THROW(checked_product({-1, 2}, "x"), Error);
}

TEST(SpecSizes, HugeBatchesAndLayersAreErrorsNotWrappedShapes) {
  const ModelSpec paper = default_model_spec();
  EXPECT_NO_THROW(infer_shapes(paper, 150, 200, 200));
  try {
    infer_shapes(paper, 2'000'000'000, 8192, 8192);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--batch 2000000000"), std::string::npos) << e.what();
  }
  // 4096 filters on an 8192 x 8192 map: the dense input would not fit an int.
  const ModelSpec wide = parse_model_spec("conv 4096 kernel=1 pool=1; dense 2");
  EXPECT_THROW(infer_shapes(wide, 1, 8192, 8192), Error);
}

TEST(SafetensorsSizes, HostileShapesAndOffsetsAreRejected) {
  testing::TempDir dir;
  auto file_with_header = [&](const std::string& header, size_t data_bytes) {
    std::string content(8, '\0');
    const uint64_t n = header.size();
    std::memcpy(content.data(), &n, 8);
    content += header + std::string(data_bytes, '\0');
    const std::string path = dir / "hostile.safetensors";
    write_file_atomically(path, content);
    return path;
  };
  // 2^32 x 2^32 x 4 bytes wraps to 0 in 64 bits: must not match empty offsets.
  EXPECT_THROW(
      read_safetensors(file_with_header(
          R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)),
      Error);
  EXPECT_THROW(read_safetensors(file_with_header(
                   R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})", 8)),
               Error);
  EXPECT_THROW(read_safetensors(
                   file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":"x"}})", 8)),
               Error);
  EXPECT_THROW(read_safetensors(
                   file_with_header(R"({"w":{"dtype":"F32","shape":7,"data_offsets":[0,8]}})", 8)),
               Error);
  // Found by the fuzzer: __metadata__ that is not an object (was an uncaught
  // nlohmann exception: "internal error", exit 3).
  EXPECT_THROW(read_safetensors(file_with_header(R"({"__metadata__":"x"})", 0)), Error);
  EXPECT_NO_THROW(read_safetensors(
      file_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8)));
}

TEST(FlagSizes, MemorySizesCannotOverflow) {
  EXPECT_THROW(parse_byte_size("1e14GB", "--budget"), Error);
  EXPECT_THROW(parse_byte_size("99999999999999", "--budget"), Error);  // MB
  EXPECT_EQ(parse_byte_size("1.5G", "--budget"), size_t(1.5 * (1u << 30)));
  EXPECT_THROW(cnmem_reserve_bytes(1e300, 0, "--gpu-mem-pool"), Error);
  EXPECT_THROW(cnmem_reserve_bytes(NAN, 0, "--gpu-mem-pool"), Error);
}

}  // namespace
}  // namespace histocnn
