// Images as bytes and lookup tables (core/byte_images.h): the augmentation
// writes bytes whose lookup is augment_to_chw's floats to the bit; the CUDA
// step's landing buffer holds either form; a step trains the same on either;
// the trainer's helpers hand bytes only to a step that takes them.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_schedule.h"
#include "byte_taking_step.h"
#include "core/byte_images.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/augment.h"
#include "test_util.h"
#include "train/step_batches.h"

namespace histocnn {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = uint8_t(rng.below(256));
  return v;
}

// Every option bytes can carry, square and not, normalised or not: the
// bytes' lookup is augment_to_chw's output, bit for bit, for many seeds.
TEST(ByteImages, TheLookupIsAugmentToChwToTheBit) {
  Normalization norm;
  norm.mean[0] = 0.7f, norm.mean[1] = 0.5f, norm.mean[2] = 0.81f;
  norm.stdev[0] = 0.15f, norm.stdev[1] = 0.2f, norm.stdev[2] = 0.11f;
  const AugmentOptions options[] = {
      {}, {true, false, 0.0f}, {false, true, 0.0f}, {true, true, 0.0f}, {true, true, 0.08f}};
  for (const auto& [w, h] : {std::pair{9, 9}, std::pair{12, 7}}) {
    const int64_t plane = int64_t(w) * h;
    const std::vector<uint8_t> hwc = random_bytes(size_t(plane) * 3, uint64_t(w));
    for (const AugmentOptions& o : options)
      for (const Normalization& n : {Normalization{}, norm})
        for (uint64_t seed = 1; seed <= 24; ++seed) {
          std::vector<float> want(size_t(plane) * 3), got(want.size());
          augment_to_chw(hwc.data(), w, h, o, seed, want.data(), n);
          std::vector<uint8_t> pixels(hwc.size());
          std::vector<float> tables(kByteTablesPerImage);
          augment_to_bytes(hwc.data(), w, h, o, seed, pixels.data(), tables.data(), n);
          expand_byte_images({pixels.data(), tables.data()}, 1, 1, plane, got.data());
          ASSERT_TRUE(testing::same_bits(got, want))
              << w << "x" << h << " flips " << o.flips << " rotations " << o.rotations << " jitter "
              << o.stain_jitter << " seed " << seed;
        }
  }
}

// HED jitter mixes a pixel's three channels: no per-channel table holds it.
TEST(ByteImages, HedJitterCannotTravelAsBytes) {
  AugmentOptions hed;
  hed.hed_jitter = 0.05f;
  EXPECT_FALSE(bytes_carry(hed));
  EXPECT_TRUE(bytes_carry(AugmentOptions{true, true, 0.1f}));
  std::vector<uint8_t> hwc(27, 100), out(27);
  std::vector<float> tables(kByteTablesPerImage);
  const std::string message = testing::error_of(
      [&] { augment_to_bytes(hwc.data(), 3, 3, hed, 1, out.data(), tables.data()); });
  EXPECT_NE(message.find("HED"), std::string::npos) << message;
}

// The expansion (the device kernel's body, a thread per pixel): each value
// its image's, its channel's table entry; rows past the count zero, as the
// float route zeroes them.
TEST(ByteImages, ExpansionLooksUpEachImagesTablesAndZeroesTheRest) {
  const int batch = 3, count = 2;
  const int64_t plane = 5;
  const std::vector<uint8_t> pixels = random_bytes(size_t(batch * plane * 3), 7);
  std::vector<float> tables(size_t(batch) * kByteTablesPerImage);
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = float(i) * 0.5f;
  std::vector<float> chw(size_t(batch * plane * 3), -1.0f);
  expand_byte_images({pixels.data(), tables.data()}, count, batch, plane, chw.data());
  for (int n = 0; n < batch; ++n)
    for (int c = 0; c < 3; ++c)
      for (int64_t p = 0; p < plane; ++p) {
        const float got = chw[size_t((n * 3 + c) * plane + p)];
        const uint8_t v = pixels[size_t((n * plane + p) * 3 + c)];
        EXPECT_EQ(got, n < count ? tables[size_t((n * 3 + c) * 256 + v)] : 0.0f)
            << n << " " << c << " " << p;
      }
}

// The CUDA step's landing buffer holds either form: the fp32 batch, or the
// pixels and, after them on a 256-byte boundary, the tables. At the paper's
// sizes the float form is the larger, so bytes cost no device memory.
TEST(ByteImages, TheLandingBufferHoldsEitherForm) {
  const ModelSpec spec = default_model_spec();
  for (int side : {32, 64, 128, 200})
    for (int batch : {1, 10, 150}) {
      const cuda::LandingLayout l = cuda::landing_layout(infer_shapes(spec, batch, side, side));
      const size_t values = size_t(batch) * 3 * side * side;
      EXPECT_EQ(l.float_bytes, values * sizeof(float));
      EXPECT_EQ(l.pixel_bytes, values);
      EXPECT_EQ(l.tables_offset % 256, 0u);
      EXPECT_GE(l.tables_offset, l.pixel_bytes);
      EXPECT_LT(l.tables_offset, l.pixel_bytes + 256);
      EXPECT_EQ(l.table_bytes, size_t(batch) * 768 * sizeof(float));
      EXPECT_EQ(l.total, l.float_bytes) << side << " px, batch " << batch;
    }
  // Tiny inputs: 3 bytes and 3 KB of tables an image outweigh 12 bytes a pixel.
  const ModelSpec tiny = parse_model_spec("conv 4 kernel=3 pool=2\ndense 2\n");
  const cuda::LandingLayout l = cuda::landing_layout(infer_shapes(tiny, 4, 8, 8));
  EXPECT_EQ(l.total, l.tables_offset + l.table_bytes);
  EXPECT_GT(l.total, l.float_bytes);
  EXPECT_EQ(cuda::landing_bytes(infer_shapes(tiny, 4, 8, 8)), l.total);
}

// A step given bytes trains as on their floats: the default train_bytes
// (the CPU step's) to the bit, short batches included.
TEST(ByteImages, AStepTrainsOnBytesAsOnTheirFloats) {
  const ModelSpec spec =
      parse_model_spec("conv 4 kernel=3 pool=2\nconv 6 kernel=3 pool=2\ndense 2\n");
  const NetworkShape shape = infer_shapes(spec, 4, 14, 14);
  const int64_t plane = 14 * 14;
  auto run = [&](bool bytes) {
    auto step = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
    step->set_parameters(Parameters::glorot(shape, 3));
    for (int s = 0; s < 3; ++s) {
      const int count = s == 2 ? 3 : 4;
      const std::vector<uint8_t> cut = random_bytes(size_t(count * plane * 3), 10 + s);
      std::vector<uint8_t> pixels(cut.size());
      std::vector<float> tables(size_t(count) * kByteTablesPerImage);
      for (int n = 0; n < count; ++n)
        augment_to_bytes(cut.data() + n * plane * 3, 14, 14, AugmentOptions{true, true, 0.1f},
                         uint64_t(n + 4 * s), pixels.data() + n * plane * 3,
                         tables.data() + n * kByteTablesPerImage);
      const std::vector<int32_t> labels = {0, 1, 1, 0};
      if (bytes) {
        step->train_bytes({pixels.data(), tables.data()}, labels.data(), count, {});
      } else {
        std::vector<float> floats(size_t(count * plane * 3));
        expand_byte_images({pixels.data(), tables.data()}, count, count, plane, floats.data());
        step->train(floats.data(), labels.data(), count);
      }
    }
    return step->parameters().values;
  };
  EXPECT_TRUE(testing::same_bits(run(true), run(false)));
}

// Bytes for a step that takes them and augmentation they carry; floats
// otherwise. train_on trains on whichever form the loader made, and a whole
// epoch of bytes ends with the weights of an epoch of floats.
TEST(ByteImages, TheTrainerHandsBytesOnlyToAStepThatTakesThem) {
  const ModelSpec spec = parse_model_spec("conv 4 kernel=3 pool=2\ndense 2\n");
  const NetworkShape shape = infer_shapes(spec, 4, 8, 8);
  auto cpu = [&] { return make_backend(cpu_device())->compile(spec, shape, StepOptions{}); };
  AugmentOptions hed;
  hed.hed_jitter = 0.05f;
  const AugmentOptions plain{true, true, 0.05f};
  EXPECT_EQ(image_form_for(*cpu(), plain), ImageForm::kFloats);
  testing::ByteTakingStep taker(cpu());
  EXPECT_EQ(image_form_for(taker, plain), ImageForm::kBytes);
  EXPECT_EQ(image_form_for(taker, hed), ImageForm::kFloats);
  EXPECT_EQ(image_form_for(taker, plain, true), ImageForm::kFloats);

  ExampleSet set = testing::uniform_examples(10, 8, 0);
  const std::vector<uint8_t> pixels = random_bytes(set.pixels.size(), 5);
  set.pixels = pixels;
  const std::vector<int> order = {3, 1, 4, 0, 5, 9, 2, 6, 8, 7};
  auto epoch = [&](TrainingStep& step, ImageForm form) {
    step.set_parameters(Parameters::glorot(shape, 9));
    BatchPool pool;
    pool.use_source(nullptr, form);
    BatchLoader loader(set, order, 4, plain, 11, 2, 2, Normalization{}, &pool);
    for (Batch b; loader.next(b);) {
      EXPECT_EQ(b.as_bytes(), form == ImageForm::kBytes);
      train_on(step, b);
    }
    return step.parameters().values;
  };
  auto floats_step = cpu();
  const std::vector<float> want = epoch(*floats_step, ImageForm::kFloats);
  EXPECT_TRUE(testing::same_bits(epoch(taker, ImageForm::kBytes), want));
  EXPECT_EQ(taker.bytes_calls, 3) << "three batches (4, 4, 2) as bytes";
  EXPECT_EQ(taker.float_calls, 3) << "each expanded by the default train_bytes";
}

}  // namespace
}  // namespace histocnn
