// The training loop's events (train/callback.h) and each callback of
// train/callbacks.h alone, on a scripted step: the order of events, deferred
// results, the schedule's rates, divergence, best-epoch selection, early
// stopping, checkpoints, metrics.json, batch-norm sync, fresh crops.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>

#include "core/atomic_file.h"
#include "core/counter_hash.h"
#include "core/error.h"
#include "test_util.h"
#include "train/callbacks.h"
#include "train/checkpoint.h"
#include "train/temperature.h"
#include "train/trainer.h"

namespace histocnn {
namespace {

const char* kSpec = "conv 2 kernel=3 pool=2 bn; dense 2";

// A step that trains nothing: each train_slice returns the scripted loss per
// row (or accumulates it, deferred like a device backend) and records the
// learning rates it was given.
class ScriptedStep final : public TrainingStep {
  NetworkShape shape_;  // first: the parameters are made from it

 public:
  explicit ScriptedStep(int batch)
      : shape_(infer_shapes(parse_model_spec(kSpec), batch, 16, 16)),
        params_(Parameters::glorot(shape_, 1)),
        buffers_(Buffers::initial(shape_)) {}
  std::vector<double> losses;  // per call (the last repeats)
  bool deferred = false;
  std::vector<float> rates;  // set_learning_rate, in order
  int calls = 0;
  bool takes_bytes = false;  // as the CUDA step: the loader should hand it bytes
  int byte_calls = 0;        // of `calls`, batches that came as bytes

  int byte_predictions = 0;  // predict_bytes calls (validation)

  bool takes_byte_images() const override { return takes_bytes; }
  void predict_bytes(const ByteImages& images, int count, float* p, float* features) override {
    ++byte_predictions;
    TrainingStep::predict_bytes(images, count, p, features);  // the expansion, then predict
  }
  StepResult train_bytes(const ByteImages& images, const int32_t* labels, int count,
                         const BatchSlice& slice) override {
    ++byte_calls;
    (void)images;  // the script ignores the images
    return train_slice(nullptr, labels, count, slice);
  }

  StepResult train_slice(const float*, const int32_t*, int count, const BatchSlice&) override {
    const double loss = losses.empty() ? 0.5 : losses[std::min(size_t(calls), losses.size() - 1)];
    ++calls;
    const StepResult r{loss * count, count};
    if (!deferred) return r;
    pending_.loss_sum += r.loss_sum;
    pending_.correct += r.correct;
    return {};
  }
  bool deferred_results() const override { return deferred; }
  StepResult take_results() override { return std::exchange(pending_, StepResult{}); }
  // Set: P(malignant) = sigmoid(log_odds(image)) from each image's CHW floats.
  std::function<double(const float*)> log_odds;
  void predict(const float* images, int count, float* p) override {
    const size_t plane = size_t(shape_.channels) * size_t(shape_.height) * size_t(shape_.width);
    for (int i = 0; i < count; ++i) {
      const double z = log_odds ? log_odds(images + plane * size_t(i)) : std::log(1.5);
      p[2 * i + 1] = float(1 / (1 + std::exp(-z)));
      p[2 * i] = 1 - p[2 * i + 1];
    }
  }
  void predict_features(const float*, int, float*, float*) override {
    throw Error("a scripted step has no features");
  }
  StepResult gradients(const float*, const int32_t*, int, bool, Parameters*) override { return {}; }
  void set_parameters(const Parameters& p) override { params_ = p; }
  Parameters parameters() const override { return params_; }
  void set_learning_rate(float rate) override { rates.push_back(rate); }
  Buffers buffers() const override { return buffers_; }
  void set_buffers(const Buffers& b) override { buffers_ = b; }
  void set_optimizer_state(const Parameters&, const Parameters&, int64_t) override {}
  void optimizer_state(Parameters* m, Parameters* v, int64_t* step) const override {
    *m = *v = Parameters::zeros(shape_);
    *step = calls;
  }
  MemoryReport memory() const override { return {}; }
  StepProfile profile() const override { return {}; }
  const NetworkShape& shape() const override { return shape_; }

  Parameters params_;

 private:
  Buffers buffers_;
  StepResult pending_;
};

// Rank 1 of two, whose broadcast hands out rank 0's bytes (`root_bytes`).
class FakeComm final : public Communicator {
 public:
  std::string root_bytes;
  int rank() const override { return 1; }
  int size() const override { return 2; }
  std::string name() const override { return "fake"; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  std::vector<double> gather(const std::vector<double>&) override { return {}; }
  std::vector<std::string> allgather(const std::string& mine) override { return {mine}; }
  void broadcast(void* data, size_t bytes) override {
    ASSERT_EQ(bytes, root_bytes.size());
    std::memcpy(data, root_bytes.data(), bytes);
  }
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message) override { fail(message); }
};

// `count` examples of 16x16 pixels, half of each label.
ExampleSet examples(int count) {
  return testing::uniform_examples(count, 16, 100);
}

// Records every event it sees, with the batch counter.
class Recorder final : public Callback {
 public:
  std::vector<std::string> events;
  void on_fit_start(Trainer&) override { events.push_back("fit_start"); }
  void on_epoch_start(Trainer& t) override { add("epoch_start", t); }
  void on_batch_start(Trainer& t) override { add("batch_start", t); }
  void on_batch_end(Trainer& t) override { add("batch_end", t); }
  void on_results(Trainer& t) override { add("results " + std::to_string(t.state().counted), t); }
  void on_train_epoch_end(Trainer& t) override { add("train_epoch_end", t); }
  void on_validation_end(Trainer& t) override { add("validation_end", t); }
  void on_epoch_end(Trainer& t) override { add("epoch_end", t); }
  void on_fit_end(Trainer&) override { events.push_back("fit_end"); }

 private:
  void add(const std::string& what, Trainer& t) {
    events.push_back(what + " @" + std::to_string(t.state().epoch) + "." +
                     std::to_string(t.state().batch));
  }
};

struct Rig {
  testing::TempDir dir;
  TrainOptions options;
  ScriptedStep step;
  ExampleSet train_set, val_set;
  std::unique_ptr<Communicator> single = make_single_process_communicator();
  std::vector<std::string> lines;

  explicit Rig(int batch = 2, int train = 6) : step(batch), train_set(examples(train)) {
    options.batch = batch;
    options.epochs = 2;
    options.threads = 1;
  }
  Trainer trainer(TrainState state = {}, Communicator* comm = nullptr) {
    TrainerParts parts;
    parts.options = &options;
    parts.step = &step;
    parts.train_set = &train_set;
    parts.val_set = &val_set;
    parts.comm = comm ? comm : single.get();
    parts.log = [this](const std::string& line) { lines.push_back(line); };
    parts.paths = run_paths(dir.path());
    parts.metadata.spec = parse_model_spec(kSpec);
    parts.metadata.width = parts.metadata.height = 16;
    parts.metadata.crop = "whole";
    parts.metadata.labels = builtin_label_scheme("glas");
    parts.local_batch = options.batch;
    return Trainer(parts, std::move(state));
  }
};

TEST(Trainer, FiresTheEventsInTheDocumentedOrder) {
  Rig rig(2, 4);
  rig.options.epochs = 1;
  Trainer t = rig.trainer();
  auto recorder = std::make_unique<Recorder>();
  Recorder* r = recorder.get();
  t.add(std::move(recorder));
  t.fit();
  EXPECT_EQ(r->events, (std::vector<std::string>{
                           "fit_start", "epoch_start @0.0", "batch_start @0.0", "results 2 @0.1",
                           "batch_end @0.1", "batch_start @0.1", "results 4 @0.2", "batch_end @0.2",
                           "train_epoch_end @0.2", "epoch_end @0.2", "fit_end"}));
  EXPECT_EQ(t.state().history.size(), 1u);
  EXPECT_DOUBLE_EQ(t.state().history[0]["loss"].get<double>(), 0.5);
}

TEST(Trainer, DeferredResultsArriveEveryTwentyStepsAndAtTheEpochsEnd) {
  Rig rig(1, 45);
  rig.options.epochs = 1;
  rig.step.deferred = true;
  Trainer t = rig.trainer();
  auto recorder = std::make_unique<Recorder>();
  Recorder* r = recorder.get();
  t.add(std::move(recorder));
  t.fit();
  std::vector<std::string> arrivals;
  for (const auto& e : r->events)
    if (e.rfind("results", 0) == 0) arrivals.push_back(e);
  EXPECT_EQ(arrivals,
            (std::vector<std::string>{"results 20 @0.20", "results 40 @0.40", "results 45 @0.45"}));
  EXPECT_EQ(t.state().seen, 45);
  EXPECT_DOUBLE_EQ(t.state().loss_sum, 0.5 * 45);
}

// The trainer's loader makes bytes for a step that takes them (the CUDA
// step), unless the augmentation cannot travel as bytes (HED jitter), and
// floats for any other step.
TEST(Trainer, HandsBytesToAStepThatTakesThemUnlessHedJitterNeedsFloats) {
  for (const bool takes : {false, true})
    for (const float hed : {0.0f, 0.05f}) {
      Rig rig(2, 6);  // 3 steps per epoch
      rig.options.epochs = 1;
      rig.options.augment.hed_jitter = hed;
      rig.step.takes_bytes = takes;
      rig.trainer().fit();
      EXPECT_EQ(rig.step.calls, 3);
      EXPECT_EQ(rig.step.byte_calls, takes && hed == 0 ? 3 : 0) << takes << " " << hed;
    }
}

TEST(Callbacks, LearningRateScheduleFollowsTheGlobalStepAcrossAResume) {
  Rig rig(2, 6);  // 3 steps per epoch
  rig.options.epochs = 3;
  rig.options.schedule.kind = "cosine";
  TrainState resumed;
  resumed.start_epoch = 1;
  Trainer t = rig.trainer(resumed);
  t.add(std::make_unique<LearningRateSchedule>());
  t.fit();
  ASSERT_EQ(rig.step.rates.size(), 6u);
  for (int i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(
        rig.step.rates[size_t(i)],
        float(learning_rate_at(rig.options.schedule, rig.options.adam.learning_rate, 3 + i, 3, 3)))
        << "step " << 3 + i;
}

TEST(Callbacks, DivergenceGuardStopsAtANonFiniteLossOrWeights) {
  Rig rig;
  rig.step.losses = {0.5, std::numeric_limits<double>::quiet_NaN()};
  Trainer t = rig.trainer();
  t.add(std::make_unique<DivergenceGuard>());
  try {
    t.fit();
    FAIL() << "a NaN loss went unnoticed";
  } catch (const DivergenceError& e) {
    EXPECT_NE(std::string(e.what()).find("loss is nan at epoch 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("try a lower --lr"), std::string::npos);
  }
  Rig weights;
  weights.step.params_.values[0] = std::numeric_limits<float>::infinity();
  Trainer u = weights.trainer();
  u.add(std::make_unique<DivergenceGuard>());
  EXPECT_THROW(u.fit(), DivergenceError);
}

// A trainer whose validation reports are set by hand, one per epoch.
void validate_as(Trainer& t, Callback& c, double image_auc) {
  EvalReport report;
  report.per_image.auc = image_auc;
  t.state().validation = report;
  c.on_validation_end(t);
}

TEST(Callbacks, BestEpochKeepsTheFirstOfTheBestAndMarksItsLine) {
  Rig rig;
  Trainer t = rig.trainer();
  BestEpoch best("image_auc");
  const double values[] = {0.5, 0.7, 0.7, 0.6};
  std::vector<bool> marked;
  for (int e = 0; e < 4; ++e) {
    t.state().epoch = e;
    t.state().line = "epoch";
    validate_as(t, best, values[e]);
    marked.push_back(t.state().line == "epoch  *best*");
  }
  EXPECT_EQ(marked, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(t.state().best["epoch"], 2);
  EXPECT_EQ(t.state().best["metric"], "image_auc");
  EXPECT_TRUE(std::filesystem::exists(t.paths().best));
}

TEST(Callbacks, BestEpochFollowsRankZerosValueOnTheOtherProcesses) {
  Rig rig;
  FakeComm comm;
  Trainer t = rig.trainer({}, &comm);
  BestEpoch best("image_auc");
  for (double rank0 : {0.6, 0.9, 0.8}) {
    comm.root_bytes.assign(reinterpret_cast<const char*>(&rank0), sizeof rank0);
    validate_as(t, best, 0.0);  // this process's own report is empty
    ++t.state().epoch;
  }
  EXPECT_EQ(t.state().best["epoch"], 2);
  EXPECT_EQ(t.state().best["value"], 0.9);
  EXPECT_FALSE(std::filesystem::exists(t.paths().best)) << "rank 0 alone writes";
}

TEST(Callbacks, EarlyStoppingWaitsPatienceEpochsAfterTheBest) {
  Rig rig;
  Trainer t = rig.trainer();
  EarlyStopping stopping(2);
  t.state().best = {{"metric", "image_auc"}, {"value", 0.9}, {"epoch", 2}};
  t.state().epoch = 2;  // the third epoch ends: one without improvement
  stopping.on_epoch_end(t);
  EXPECT_FALSE(t.state().stop);
  t.state().epoch = 3;
  stopping.on_epoch_end(t);
  EXPECT_TRUE(t.state().stop);
  ASSERT_EQ(rig.lines.size(), 1u);
  EXPECT_EQ(rig.lines[0],
            "early stop: image_auc has not improved for 2 epochs (best 0.9 at epoch 2)");
}

// `count` validation images whose top-left pixel says the label, not
// always rightly (the others are grey): a single view reads it, while the
// average over the 8 dihedral transforms sees it in 2 of 8 and is softer.
ExampleSet corner_examples(int count) {
  ExampleSet set = examples(count);
  for (int i = 0; i < count; ++i) {
    set.images.push_back(
        {"image" + std::to_string(i), "", "patient" + std::to_string(i % 4), i % 2});
    set.examples[size_t(i)].image_index = i;
    const int shift = (i % 2 ? 20 : -20) + int(std::lround(60 * std::sin(1.7 * i)));
    for (int c = 0; c < 3; ++c)
      set.pixels[size_t(i) * 16 * 16 * 3 + size_t(c)] = uint8_t(100 + shift);
  }
  return set;
}

// Validation predicts from bytes where the step takes them, whatever form
// training took (HED jitter trains on floats), and its crops' probabilities
// are those of the float route.
TEST(Trainer, ValidatesOnBytesWhereTheStepTakesThem) {
  std::vector<std::vector<double>> crops;
  for (const bool takes : {false, true})
    for (const float hed : {0.0f, 0.05f}) {
      Rig rig(2, 6);
      rig.options.epochs = 2;
      rig.options.augment.hed_jitter = hed;
      rig.val_set = corner_examples(6);
      rig.step.takes_bytes = takes;
      rig.step.log_odds = [](const float* image) { return 3.0 * image[0] - image[7]; };
      Trainer t = rig.trainer();
      t.fit();
      EXPECT_EQ(rig.step.byte_predictions, takes ? 2 * 3 : 0) << "3 batches an epoch";
      std::vector<double> p;
      for (const Prediction& c : t.state().validation->crops) p.push_back(c.p_malignant);
      crops.push_back(p);
    }
  for (size_t i = 1; i < crops.size(); ++i) EXPECT_EQ(crops[i], crops[0]) << "run " << i;
}

TEST(Callbacks, TemperatureScalingFitsOnWhatEvalServesInTheEpochsAModelKeeps) {
  Rig rig;
  rig.options.epochs = 3;
  rig.val_set = corner_examples(48);
  // The top-left pixel against the image's mean (the input is normalised).
  rig.step.log_odds = [](const float* image) {
    double mean = 0;
    for (int k = 0; k < 16 * 16; ++k) mean += image[k];
    return 30 * (image[0] - mean / (16 * 16));
  };
  Trainer t = rig.trainer();
  t.state().validation = t.evaluate_validation(false);
  const EvalReport plain = *t.state().validation, tta = t.evaluate_validation(true);
  std::vector<int> labels;
  for (const Prediction& p : plain.raw_crops) labels.push_back(p.label);
  const double t_plain = fit_temperature(plain.crop_log_odds, labels).temperature;
  const double t_tta = fit_temperature(tta.crop_log_odds, labels).temperature;
  // TTA softens each crop, so what eval serves needs a sharper temperature.
  // (Both fits apply: single views are overconfident, T ~5.7; TTA ~0.9.)
  ASSERT_GT(t_plain, 1.5);
  ASSERT_LT(t_tta, t_plain * 0.5);
  ASSERT_GT(t_tta, kMinTemperature);

  TemperatureScaling scaling(true);
  t.state().epoch = 0;  // not the last epoch, no --select-by: the plain fit, no extra pass
  scaling.on_validation_end(t);
  EXPECT_DOUBLE_EQ(t.state().calibration["temperature"].get<double>(), t_plain);
  EXPECT_EQ(t.state().calibration["tta"], false);
  t.state().epoch = 2;  // the last: what the model file keeps
  t.state().line.clear();
  scaling.on_validation_end(t);
  EXPECT_DOUBLE_EQ(t.state().calibration["temperature"].get<double>(), t_tta);
  EXPECT_EQ(t.state().calibration["tta"], true);
  EXPECT_NE(t.state().line.find("(TTA)"), std::string::npos) << t.state().line;
  rig.options.select_by = "image_auc";  // any epoch may become model.best
  t.state().epoch = 0;
  scaling.on_validation_end(t);
  EXPECT_EQ(t.state().calibration["tta"], true);
  // Without --eval-tta the model is served single views: fit on them.
  TemperatureScaling single_views;
  single_views.on_validation_end(t);
  EXPECT_DOUBLE_EQ(t.state().calibration["temperature"].get<double>(), t_plain);
  EXPECT_EQ(t.state().calibration["tta"], false);
}

// A network whose scores do not separate the classes (an early epoch) has its
// temperature capped, and the epoch's line says so rather than show a bare
// "T 20.00"; a fitted T says nothing more.
TEST(Callbacks, TemperatureScalingSaysWhenItsFitIsCapped) {
  Rig rig;
  rig.val_set = corner_examples(48);
  rig.step.log_odds = [](const float*) { return 4.0; };  // malignant for every crop, half wrong
  Trainer t = rig.trainer();
  t.state().validation = t.evaluate_validation(false);
  TemperatureScaling scaling;
  scaling.on_validation_end(t);
  EXPECT_NEAR(t.state().calibration["temperature"].get<double>(), kMaxTemperature, 1e-3);
  EXPECT_NE(t.state().line.find("T 20.00 (capped"), std::string::npos) << t.state().line;

  rig.step.log_odds = [](const float* image) {  // as above: T ~5.7
    double mean = 0;
    for (int k = 0; k < 16 * 16; ++k) mean += image[k];
    return 30 * (image[0] - mean / (16 * 16));
  };
  t.state().validation = t.evaluate_validation(false);
  t.state().line.clear();
  scaling.on_validation_end(t);
  EXPECT_LT(t.state().calibration["temperature"].get<double>(), kMaxTemperature);
  EXPECT_EQ(t.state().line.find("capped"), std::string::npos) << t.state().line;
}

TEST(Callbacks, CheckpointingWritesEachEpochAndTheModelAtTheEnd) {
  Rig rig;
  rig.options.epochs = 2;
  Trainer t = rig.trainer();
  t.add(std::make_unique<Checkpointing>());
  t.fit();
  const ModelFile ck = load_model_file(t.paths().checkpoint);
  EXPECT_TRUE(ck.has_optimizer);
  EXPECT_EQ(ck.state["epoch"], 2);
  EXPECT_EQ(ck.state["history"].size(), 2u);
  EXPECT_EQ(ck.state["step"], 6);
  const ModelFile model = load_model_file(t.paths().model);
  EXPECT_FALSE(model.has_optimizer);
  EXPECT_EQ(model.params.values, rig.step.params_.values);
}

TEST(Callbacks, WithoutCheckpointsOnlyTheModelIsWritten) {
  Rig rig;
  rig.options.epochs = 2;
  Trainer t = rig.trainer();
  t.add(std::make_unique<Checkpointing>(/*every_epoch=*/false));
  t.fit();
  EXPECT_FALSE(std::filesystem::exists(t.paths().checkpoint));
  EXPECT_EQ(load_model_file(t.paths().model).params.values, rig.step.params_.values);
}

TEST(Callbacks, EpochLogAndMetricsFileReportTheRun) {
  Rig rig;
  MemoryEngine engine(MemoryEngineOptions{});
  Trainer t = rig.trainer();
  t.add(std::make_unique<EpochLog>());
  auto metrics = std::make_unique<MetricsFile>(nlohmann::json{{"device", "cpu"}}, engine);
  const MetricsFile* summary = metrics.get();
  t.add(std::move(metrics));
  t.fit();
  ASSERT_EQ(rig.lines.size(), 2u);
  EXPECT_EQ(rig.lines[1].rfind("epoch 2/2  loss 0.5000  train acc 1.000  ", 0), 0u) << rig.lines[1];
  const auto written = nlohmann::json::parse(read_file(t.paths().metrics));
  EXPECT_EQ(written, summary->summary());
  EXPECT_EQ(written["device"], "cpu");
  EXPECT_EQ(written["history"].size(), 2u);
  EXPECT_TRUE(written["validation"].is_null());  // no validation images
}

TEST(Callbacks, BatchNormSyncTakesRankZerosStatistics) {
  Rig rig;
  FakeComm comm;
  Trainer t = rig.trainer({}, &comm);
  const size_t n = rig.step.buffers().values.size();
  const std::vector<float> root(n, 0.25f);
  comm.root_bytes.assign(reinterpret_cast<const char*>(root.data()), n * sizeof(float));
  BatchNormSync sync;
  sync.on_train_epoch_end(t);
  EXPECT_EQ(rig.step.buffers().values, std::vector<float>(n, 0.25f));
}

TEST(Callbacks, FreshCropsRedrawFromTheSecondEpochSeededByTheEpoch) {
  ExampleSet set;
  set.width = set.height = 4;
  Image source;
  source.width = source.height = 16;
  for (int i = 0; i < 16 * 16 * 3; ++i) source.rgb.push_back(uint8_t(i * 7));
  set.sources = {source};
  set.backgrounds = {BackgroundMap(source)};
  for (int i = 0; i < 3; ++i) set.examples.push_back({0, 0, 0, 0});
  set.pixels.assign(3 * 4 * 4 * 3, 0);
  Rig rig;
  Trainer t = rig.trainer();
  FreshCrops fresh(set, 42);
  const ExampleSet before = set;
  fresh.on_epoch_start(t);  // epoch 0: the crops the set was built with
  EXPECT_EQ(set.pixels, before.pixels);
  t.state().epoch = 3;
  fresh.on_epoch_start(t);
  ExampleSet expected = before;
  recrop(expected, 42 ^ mix64(3));
  EXPECT_EQ(set.pixels, expected.pixels);
  EXPECT_NE(set.pixels, before.pixels);
}

}  // namespace
}  // namespace histocnn
