// Prediction from images as bytes (core/byte_images.h): a transformed byte
// image expands to the transformed floats; a step, the members' predictor
// (test-time augmentation, features, an ensemble) and evaluation give the
// very results of the float route, and evaluation hands bytes only to steps
// that take them.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "backends/backend.h"
#include "byte_taking_step.h"
#include "core/byte_images.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/loader.h"
#include "test_util.h"
#include "train/evaluate.h"
#include "train/member_prediction.h"
#include "train/step_batches.h"

namespace histocnn {
namespace {

const char* kNet = "conv 4 kernel=3 pool=2\nconv 6 kernel=3 pool=2\ndense 5\ndense 2\n";

Normalization some_normalization() {
  return Normalization::parse("0.7,0.5,0.6,0.2,0.25,0.21", "test");
}

// `count` random images of width x height as bytes and tables (normalised,
// no augmentation: what evaluation and slides make).
struct Bytes {
  std::vector<uint8_t> pixels;
  std::vector<float> tables;
  ByteImages images() const { return {pixels.data(), tables.data()}; }
};
Bytes random_images(int count, int width, int height, uint64_t seed) {
  Rng rng(seed);
  const size_t per = size_t(3) * width * height;
  std::vector<uint8_t> cut(per * size_t(count));
  for (auto& v : cut) v = uint8_t(rng.below(256));
  Bytes b;
  b.pixels.resize(cut.size());
  b.tables.resize(size_t(count) * kByteTablesPerImage);
  for (int n = 0; n < count; ++n)
    augment_to_bytes(
        cut.data() + per * size_t(n), width, height, {}, 0, b.pixels.data() + per * size_t(n),
        b.tables.data() + size_t(kByteTablesPerImage) * size_t(n), some_normalization());
  return b;
}

std::vector<float> expanded(const Bytes& b, int count, int width, int height) {
  std::vector<float> f(size_t(count) * 3 * size_t(width) * size_t(height));
  expand_byte_images(b.images(), count, count, int64_t(width) * height, f.data());
  return f;
}

std::unique_ptr<TrainingStep> cpu_step(const NetworkShape& shape, uint64_t seed) {
  const ModelSpec spec = parse_model_spec(kNet);
  auto step = make_backend(cpu_device())->compile(spec, shape, StepOptions{});
  step->set_parameters(Parameters::glorot(shape, seed));
  return step;
}

// Every dihedral transform, square and not: the transformed bytes expand to
// the transformed floats, bit for bit (a transform that mixed up the two
// forms' pixel orders would differ at every k but 0).
TEST(BytePrediction, TransformedBytesExpandToTheTransformedFloats) {
  for (const auto& [w, h] : {std::pair{5, 5}, std::pair{6, 4}}) {
    const Bytes b = random_images(1, w, h, 3);
    const std::vector<float> floats = expanded(b, 1, w, h);
    for (int k = 0; k < dihedral_count(w, h); ++k) {
      Bytes moved = b;
      dihedral_hwc(b.pixels.data(), moved.pixels.data(), w, h, k);
      std::vector<float> want(floats.size());
      dihedral_chw(floats.data(), want.data(), 3, w, h, k);
      EXPECT_TRUE(testing::same_bits(expanded(moved, 1, w, h), want))
          << w << "x" << h << " k " << k;
      if (k > 0) {
        EXPECT_NE(moved.pixels, b.pixels) << "k " << k << " moved nothing";
      }
    }
  }
  std::vector<uint8_t> out(3 * 25);
  EXPECT_THROW(dihedral_hwc(out.data(), out.data(), 6, 4, 4), Error) << "no transpose of 6x4";
}

// The default predict_bytes (every step but the CUDA one) is predict and
// predict_features on the expansion, a short batch included.
TEST(BytePrediction, AStepPredictsFromBytesAsFromTheirFloats) {
  const NetworkShape shape = infer_shapes(parse_model_spec(kNet), 4, 14, 14);
  auto step = cpu_step(shape, 5);
  const int count = 3;
  const Bytes b = random_images(count, 14, 14, 8);
  const std::vector<float> floats = expanded(b, count, 14, 14);
  std::vector<float> p_bytes(count * 2), p_floats(count * 2);
  std::vector<float> f_bytes(size_t(count * step->feature_width()), 0), f_floats(f_bytes.size(), 1);
  step->predict_bytes(b.images(), count, p_bytes.data(), f_bytes.data());
  step->predict_features(floats.data(), count, p_floats.data(), f_floats.data());
  EXPECT_TRUE(testing::same_bits(p_bytes, p_floats));
  EXPECT_TRUE(testing::same_bits(f_bytes, f_floats));
  std::vector<float> p_plain(count * 2);
  step->predict_bytes(b.images(), count, p_plain.data(), nullptr);
  EXPECT_TRUE(testing::same_bits(p_plain, p_floats));
}

// An ensemble of a step that takes bytes and one that does not, with
// test-time augmentation and features: the bytes route's every result is
// the floats route's, and the taker got bytes once per transform.
TEST(BytePrediction, MembersPredictFromBytesAsFromTheirFloatsUnderTta) {
  const NetworkShape shape = infer_shapes(parse_model_spec(kNet), 4, 14, 14);
  testing::ByteTakingStep taker(cpu_step(shape, 5));
  auto other = cpu_step(shape, 6);
  MemberPredictor predictor({&taker, other.get()}, {Tempering{}, Tempering{}}, 14, 14, true);
  const int count = 3;
  const Bytes b = random_images(count, 14, 14, 9);
  const std::vector<float> floats = expanded(b, count, 14, 14);
  predictor.predict(floats.data(), count, true);
  std::vector<std::vector<double>> want;
  std::vector<std::vector<float>> want_features;
  for (int r = 0; r < count; ++r) {
    want.push_back({predictor.raw_p_malignant(r, 0), predictor.raw_p_malignant(r, 1),
                    predictor.raw_log_odds(r)});
    want_features.push_back(predictor.features(r));
  }
  EXPECT_EQ(taker.byte_predictions, 0);
  predictor.predict(b.images(), count, true);
  EXPECT_EQ(taker.byte_predictions, 8) << "one call per dihedral transform of a square";
  for (int r = 0; r < count; ++r) {
    EXPECT_EQ(want[size_t(r)],
              (std::vector<double>{predictor.raw_p_malignant(r, 0), predictor.raw_p_malignant(r, 1),
                                   predictor.raw_log_odds(r)}))
        << "row " << r;
    EXPECT_TRUE(testing::same_bits(want_features[size_t(r)], predictor.features(r))) << "row " << r;
  }
}

// Random 14x14 crops of six images, two patients each way.
ExampleSet random_examples() {
  ExampleSet set;
  set.width = set.height = 14;
  for (int i = 0; i < 6; ++i)
    set.images.push_back({"img" + std::to_string(i), "", "p" + std::to_string(i / 2), i % 2});
  for (int e = 0; e < 22; ++e) set.examples.push_back({e % 6, e % 2, e, 0});
  Rng rng(17);
  set.pixels.resize(22 * 14 * 14 * 3);
  for (auto& v : set.pixels) v = uint8_t(rng.below(256));
  return set;
}

// Evaluation's loader makes bytes for a step that takes them (its kept pool
// then holds bytes), floats for one that does not, and the crops' results
// are the same either way, with and without test-time augmentation.
TEST(BytePrediction, EvaluationHandsBytesOnlyToAStepThatTakesThem) {
  const NetworkShape shape = infer_shapes(parse_model_spec(kNet), 4, 14, 14);
  const ExampleSet set = random_examples();
  testing::ByteTakingStep taker(cpu_step(shape, 5));
  auto plain = cpu_step(shape, 5);
  EXPECT_EQ(prediction_form({plain.get()}), ImageForm::kFloats);
  EXPECT_EQ(prediction_form({&taker}), ImageForm::kBytes);
  EXPECT_EQ(prediction_form({&taker, plain.get()}), ImageForm::kFloats);
  for (const bool tta : {false, true}) {
    EvalOptions options;
    options.tta = tta;
    options.loader_workers = 2;
    BatchPool kept;
    options.batch_buffers = &kept;
    const int before = taker.byte_predictions;
    const EvalReport got = evaluate(taker, set, some_normalization(), nullptr, options);
    EXPECT_EQ(taker.byte_predictions - before, 6 * (tta ? 8 : 1)) << "22 crops in 6 batches";
    EXPECT_EQ(kept.form(), ImageForm::kBytes);
    EXPECT_GT(kept.buffers(), 0u) << "the buffers went back to the caller's pool";
    options.batch_buffers = nullptr;
    const EvalReport want = evaluate(*plain, set, some_normalization(), nullptr, options);
    ASSERT_EQ(got.crops.size(), want.crops.size());
    for (size_t i = 0; i < got.crops.size(); ++i)
      EXPECT_EQ(got.crops[i].p_malignant, want.crops[i].p_malignant) << "crop " << i;
    EXPECT_EQ(got.crop_log_odds, want.crop_log_odds);
  }
}

}  // namespace
}  // namespace histocnn
