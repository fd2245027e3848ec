#include "train/selftest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <sstream>

#include "backends/backend.h"
#include "core/error.h"
#include "core/host_buffers.h"
#include "core/rng.h"
#include "data/augment.h"
#include "memory/memory_engine.h"
#include "memory/pool_resource.h"
#include "nn/reference.h"

namespace histocnn {
namespace {

// Worst |a - b| relative to the largest |b| (floored so near-zero tensors do
// not blow up the ratio).
double relative_difference(const float* a, const float* b, size_t n) {
  double diff = 0, scale = 1e-3;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return diff / scale;
}

struct Batch {
  std::vector<float> images;
  std::vector<int32_t> labels;
};

Batch random_batch(const NetworkShape& shape, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  b.images.resize(size_t(shape.batch) * shape.channels * shape.height * shape.width);
  for (auto& x : b.images) x = float(rng.normal());
  b.labels.resize(size_t(shape.batch));
  for (auto& y : b.labels) y = int32_t(rng.below(uint64_t(shape.classes())));
  return b;
}

// A batch as a loader makes it for a step that takes bytes
// (core/byte_images.h): random pixels, each image flipped or rotated, its
// tables stain-jittered and normalised.
struct ByteBatch {
  std::vector<uint8_t> pixels;
  std::vector<float> tables;
  std::vector<int32_t> labels;
};
ByteBatch random_byte_batch(const NetworkShape& shape, uint64_t seed) {
  Rng rng(seed);
  const size_t per = size_t(3) * shape.height * shape.width;
  std::vector<uint8_t> cut(per * size_t(shape.batch));
  for (auto& v : cut) v = uint8_t(rng.below(256));
  Normalization norm;
  for (int c = 0; c < 3; ++c) norm.mean[c] = 0.5f + 0.1f * float(c), norm.stdev[c] = 0.2f;
  ByteBatch b;
  b.pixels.resize(cut.size());
  b.tables.resize(size_t(shape.batch) * kByteTablesPerImage);
  for (int n = 0; n < shape.batch; ++n)
    augment_to_bytes(cut.data() + per * size_t(n), shape.width, shape.height,
                     AugmentOptions{true, true, 0.05f}, seed * 1000 + uint64_t(n),
                     b.pixels.data() + per * size_t(n),
                     b.tables.data() + size_t(kByteTablesPerImage) * size_t(n), norm);
  b.labels.resize(size_t(shape.batch));
  for (auto& y : b.labels) y = int32_t(rng.below(uint64_t(shape.classes())));
  return b;
}

Parameters initial_parameters(const NetworkShape& shape) {
  Parameters p = Parameters::glorot(shape, 11);
  for (const auto& info : p.layout)
    if (info.is_bias)
      for (int64_t i = 0; i < info.size; ++i) p.data(info)[i] = 0.05f * float((i % 7) - 3);
  return p;
}

// The trusted side: the CPU backend (for a GPU under test) or the naive
// reference network (for the CPU backend under test).
struct Reference {
  std::string name;
  std::unique_ptr<TrainingStep> cpu;  // null: naive reference
  const NetworkShape* shape;
  StepOptions options;
  Parameters params, m, v;
  Buffers buffers;  // batch-norm running statistics of the naive reference
  int64_t step = 0;

  void set(const Parameters& p) {
    params = p;
    m = Parameters::zeros(*shape);
    v = Parameters::zeros(*shape);
    buffers = Buffers::initial(*shape);
    step = 0;
    if (cpu) {
      cpu->set_parameters(p);
      cpu->set_optimizer_state(m, v, 0);
      cpu->set_buffers(buffers);
    }
  }
  // Loss (mean), probabilities and gradients at the current parameters.
  reference::NetworkResult forward_backward(const Batch& b, int count, bool training) {
    if (!cpu)
      return reference::network_forward_backward(*shape, params, b.images.data(), b.labels.data(),
                                                 count, training, options.dropout_seed, step,
                                                 &buffers, options.label_smoothing);
    reference::NetworkResult r;
    const StepResult s =
        cpu->gradients(b.images.data(), b.labels.data(), count, training, &r.grads);
    r.loss = s.loss_sum / count;
    r.probs.resize(size_t(shape->batch) * size_t(shape->classes()));
    cpu->predict(b.images.data(), count, r.probs.data());
    return r;
  }
  void train(const Batch& b, int count) {
    if (cpu) {
      cpu->train(b.images.data(), b.labels.data(), count);
      params = cpu->parameters();
      return;
    }
    auto r = reference::network_forward_backward(*shape, params, b.images.data(), b.labels.data(),
                                                 count, true, options.dropout_seed, step, &buffers,
                                                 options.label_smoothing);
    ++step;
    adam_update(options.adam, step, int64_t(params.values.size()), params.values.data(),
                r.grads.values.data(), m.values.data(), v.values.data());
  }
};

// Adam normalises each update to about the learning rate whatever the
// gradient's size, so a gradient within rounding of zero can move a weight by
// up to lr in either direction: a few steps apart, weights may differ by a few
// 1e-3 relative to the largest weight without anything being wrong.
constexpr double kTrainTolerance = 5e-3;

}  // namespace

SelfTestOptions quick_selftest_options(const ModelSpec& spec, int width, int height) {
  SelfTestOptions o;
  o.spec = spec;
  // The network as it will train, on a smaller input where the spec allows it.
  o.width = std::min(width, 64);
  o.height = std::min(height, 64);
  try {
    infer_shapes(spec, 2, o.height, o.width);
  } catch (const Error&) {
    o.width = width;
    o.height = height;
  }
  o.batch = 4;
  o.steps = 2;
  o.allocators = {"pool", "plan"};
  o.pool_operations = 2000;
  return o;
}

namespace {

// One self-test's fixed parts: the device and its backend, the network, the
// starting weights, a batch, the reference, and the report being filled.
struct SelfTest {
  const SelfTestOptions& o;
  Device device;
  std::unique_ptr<Backend> backend;
  NetworkShape shape;
  Parameters initial;
  Batch batch;
  int count;  // rows used: a padded row is part of the test (batch norm trains on full batches)
  Reference ref;
  SelfTestReport report;

  explicit SelfTest(const SelfTestOptions& options)
      : o(options),
        device(select_device(o.device)),  // "no CUDA device: ..." when absent
        backend(make_backend(device)),
        shape(infer_shapes(o.spec, o.batch, o.height, o.width)),
        initial(initial_parameters(shape)),
        batch(random_batch(shape, 5)),
        count(shape.has_batch_norm() ? o.batch : std::max(1, o.batch - 1)) {
    ref.shape = &shape;
    ref.options.dropout_seed = 77;
    ref.options.label_smoothing = o.label_smoothing;
    if (o.device != "cpu") {
      ref.name = "cpu";
      ref.cpu = make_backend(cpu_device())->compile(o.spec, shape, ref.options);
    } else {
      ref.name = "naive reference";
    }
  }
  void add(const std::string& check, double worst, double tolerance, const std::string& note) {
    SelfTestRow row{check, worst <= tolerance, worst, tolerance, note};
    report.passed = report.passed && row.passed;
    report.rows.push_back(row);
  }
  // The memory of one check: `allocator` on the self-test's device.
  MemoryEngineOptions memory(const std::string& allocator) const {
    MemoryEngineOptions mo;
    mo.device = device;
    mo.config.allocator = allocator;
    return mo;
  }
};

// 1 - the cosine of the angle between two gradients (0: the same direction).
double direction_gap(const float* a, const float* b, size_t n) {
  double dot = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i)
    dot += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  if (aa == 0 && bb == 0) return 0;
  return 1 - dot / std::sqrt(std::max(aa * bb, 1e-300));
}

// 1. Every layer forward and backward (training mode: dropout masks too), in
// `precision`. fp32 is held to the reference element by element. bf16 (CUDA:
// bf16 maps and weights) against the fp32 reference: max-pool and ReLU make
// gradients discontinuous (a bf16 rounding moves some maxima), so gradients
// are held to their direction, the loss and probabilities to bf16's rounding.
// Probabilities and features from images as bytes (random_byte_batch)
// against those from their floats: the step's own expansion (CUDA: on the
// device, after the bytes crossed), bit for bit.
void check_byte_prediction(SelfTest& t, TrainingStep& step) {
  if (t.shape.channels != 3) return;  // bytes are RGB
  const ByteBatch b = random_byte_batch(t.shape, 7);
  const int64_t plane = int64_t(t.shape.height) * t.shape.width;
  std::vector<float> floats(size_t(3 * plane) * size_t(t.count));
  expand_byte_images({b.pixels.data(), b.tables.data()}, t.count, t.count, plane, floats.data());
  const size_t probs = size_t(t.count) * size_t(t.shape.classes()),
               features = size_t(t.count) * size_t(step.feature_width());
  std::vector<float> probs_floats(probs), probs_bytes(probs);
  std::vector<float> features_floats(features), features_bytes(features);
  step.predict_features(floats.data(), t.count, probs_floats.data(), features_floats.data());
  step.predict_bytes({b.pixels.data(), b.tables.data()}, t.count, probs_bytes.data(),
                     features_bytes.data());
  t.add("same predictions, images as bytes",
        std::max(relative_difference(probs_bytes.data(), probs_floats.data(), probs),
                 relative_difference(features_bytes.data(), features_floats.data(), features)),
        0, "probabilities and features: bytes expanded by the step, against their floats");
}

void check_layers(SelfTest& t, const std::string& precision = "fp32") {
  const auto& o = t.o;
  const bool bf16 = precision == "bf16";
  const std::string prefix = bf16 ? "bf16 " : "";
  const double close = bf16 ? 2e-2 : 1e-4;
  MemoryEngine engine(t.memory("plan"));
  StepOptions so = t.ref.options;
  so.cudnn_graph = o.cudnn_graph;
  so.channels_last = o.channels_last;
  so.precision = precision;
  so.device.memory = &engine.resource();
  auto step = t.backend->compile(o.spec, t.shape, so);
  step->set_parameters(t.initial);
  t.ref.set(t.initial);
  Parameters grads;
  const StepResult got =
      step->gradients(t.batch.images.data(), t.batch.labels.data(), t.count, true, &grads);
  const auto want = t.ref.forward_backward(t.batch, t.count, true);
  const float loss_got = float(got.loss_sum / t.count), loss_want = float(want.loss);
  t.add(prefix + "forward loss", relative_difference(&loss_got, &loss_want, 1), close,
        "vs " + t.ref.name);
  std::vector<float> probs(size_t(t.shape.batch) * size_t(t.shape.classes()));
  step->predict(t.batch.images.data(), t.count, probs.data());
  auto want_probs = t.ref.cpu ? want.probs
                              : reference::network_forward_backward(
                                    t.shape, t.initial, t.batch.images.data(),
                                    t.batch.labels.data(), t.count, false, 0, 0, &t.ref.buffers)
                                    .probs;
  t.add(prefix + "forward probabilities",
        relative_difference(probs.data(), want_probs.data(),
                            size_t(t.count) * size_t(t.shape.classes())),
        close, "inference mode");
  if (!bf16) check_byte_prediction(t, *step);
  for (const auto& info : t.initial.layout) {
    const float *a = grads.data(info), *b = want.grads.data(info);
    if (bf16)
      t.add(prefix + info.name + " gradient", direction_gap(a, b, size_t(info.size)), 0.1,
            "1 - cosine with fp32's");
    else
      t.add(info.name + " gradient", relative_difference(a, b, size_t(info.size)), 2e-3,
            "backward");
  }
}

// A CUDA step (on `engine`'s planned memory, the test's initial weights)
// with one of its routes forced by `force`; null, with a skipped row `check`
// saying why, where that route does not apply to the network, or a failed
// one where it applies but the device refused to run our kernel.
std::unique_ptr<TrainingStep> step_with_route(SelfTest& t, MemoryEngine& engine,
                                              const std::string& check,
                                              const std::function<void(StepOptions&)>& force) {
  StepOptions so = t.ref.options;
  so.cudnn_graph = t.o.cudnn_graph;
  so.channels_last = t.o.channels_last;
  so.device.memory = &engine.resource();
  force(so);
  std::unique_ptr<TrainingStep> step;
  try {
    step = t.backend->compile(t.o.spec, t.shape, so);
  } catch (const KernelRefused& e) {  // the route applies, but the device would not run it
    t.report.rows.push_back({check, false, 0, 0, e.what(), false});
    t.report.passed = false;
    return nullptr;
  } catch (const Error& e) {
    t.report.rows.push_back({check, true, 0, 0, e.what(), true});
    return nullptr;
  }
  step->set_parameters(t.initial);
  return step;
}

// 1b. CUDA: conv1's weight gradient by each route the step chooses among
// by time (cudnn, our direct kernel, our kernel from the pooled gradient),
// each forced once, against the reference. A route that does not apply to
// the network (batch norm: no pooled route) is a skipped row.
void check_weight_gradient_routes(SelfTest& t) {
  if (t.o.device == "cpu") return;
  t.ref.set(t.initial);
  const auto want = t.ref.forward_backward(t.batch, t.count, true);
  const ParamInfo* conv1 = nullptr;
  for (const auto& info : t.initial.layout)
    if (info.name == "conv1.weight") conv1 = &info;
  if (!conv1) return;
  for (const std::string route : {"cudnn", "direct", "pooled"}) {
    MemoryEngine engine(t.memory("plan"));
    const std::string check = "conv1.weight gradient, " + route;
    const auto step = step_with_route(t, engine, check,
                                      [&](StepOptions& so) { so.cuda_small_wgrad_route = route; });
    if (!step) continue;
    Parameters grads;
    step->gradients(t.batch.images.data(), t.batch.labels.data(), t.count, true, &grads);
    t.add(check,
          relative_difference(grads.data(*conv1), want.grads.data(*conv1), size_t(conv1->size)),
          2e-3, "the route forced (training picks the fastest)");
  }
}

// 1b'. CUDA: the later conv blocks' weight and data gradients by each route
// (cuDNN's algorithm; our kernels from the pooled gradient), each forced once
// in every block, against the reference: the weight route in the later
// blocks' weight gradients, the data route in every gradient before the
// last block (they all read it). A network where a later block cannot take
// the pooled route is a skipped row.
void check_later_gradient_routes(SelfTest& t, const std::string& direction,
                                 std::string StepOptions::*option,
                                 const std::vector<const ParamInfo*>& compared) {
  if (compared.empty()) return;
  t.ref.set(t.initial);
  const auto want = t.ref.forward_backward(t.batch, t.count, true);
  for (const std::string route : {"cudnn", "pooled"}) {
    MemoryEngine engine(t.memory("plan"));
    const std::string check = "later conv " + direction + " gradients, " + route;
    const auto step =
        step_with_route(t, engine, check, [&](StepOptions& so) { so.*option = route; });
    if (!step) continue;
    Parameters grads;
    step->gradients(t.batch.images.data(), t.batch.labels.data(), t.count, true, &grads);
    double worst = 0;
    for (const ParamInfo* info : compared)
      worst = std::max(worst, relative_difference(grads.data(*info), want.grads.data(*info),
                                                  size_t(info->size)));
    t.add(check, worst, 2e-3,
          "the route forced in every block after conv1 (training picks the fastest)");
  }
}

void check_later_gradient_routes(SelfTest& t) {
  if (t.o.device == "cpu") return;
  std::vector<const ParamInfo*> later_weights, all;
  for (const auto& info : t.initial.layout) {
    all.push_back(&info);
    if (info.name.rfind("conv", 0) == 0 && info.name != "conv1.weight" && info.name.size() > 7 &&
        info.name.compare(info.name.size() - 7, 7, ".weight") == 0)
      later_weights.push_back(&info);
  }
  check_later_gradient_routes(t, "weight", &StepOptions::cuda_pooled_wgrad_route, later_weights);
  if (t.shape.convs.size() > 1)
    check_later_gradient_routes(t, "data", &StepOptions::cuda_pooled_dgrad_route, all);
}

// 1c. CUDA: conv1's forward by each route (cuDNN's convolution then our pool
// kernel; our fused convolution + pool kernel), each forced once: the loss
// and every gradient against the reference (the forward feeds them all). A
// route that does not apply is a skipped row.
void check_forward_routes(SelfTest& t) {
  if (t.o.device == "cpu") return;
  t.ref.set(t.initial);
  const auto want = t.ref.forward_backward(t.batch, t.count, true);
  for (const std::string route : {"cudnn", "fused"}) {
    MemoryEngine engine(t.memory("plan"));
    const std::string check = "conv1 forward, " + route;
    const auto step = step_with_route(
        t, engine, check, [&](StepOptions& so) { so.cuda_conv1_forward_route = route; });
    if (!step) continue;
    Parameters grads;
    const StepResult got =
        step->gradients(t.batch.images.data(), t.batch.labels.data(), t.count, true, &grads);
    const float loss_got = float(got.loss_sum / t.count), loss_want = float(want.loss);
    t.add(check + ", loss", relative_difference(&loss_got, &loss_want, 1), 1e-4,
          "the route forced (training picks the fastest)");
    double worst = 0;
    for (const auto& info : t.initial.layout)
      worst = std::max(
          worst, relative_difference(grads.data(info), want.grads.data(info), size_t(info.size)));
    t.add(check + ", gradients", worst, 2e-3, "the worst parameter tensor's");
  }
}

// o.steps training steps through `allocator`. step_memory: each batch's
// images first copied into a buffer from the step's input_buffers(), as the
// loader makes them (CUDA: page-locked, sent by DMA from where they are);
// false when the step has no such source. `feed`: random float batches, or
// random byte batches (random_byte_batch) as bytes or as their expansion.
struct Trained {
  Parameters params;
  MemoryStats stats;
  bool step_memory = false;
};
enum class Feed { kFloats, kBytes, kBytesExpanded };
Trained train_steps(SelfTest& t, const std::string& allocator, bool step_memory,
                    Feed feed = Feed::kFloats) {
  const auto& o = t.o;
  MemoryEngineOptions mo = t.memory(allocator);
  mo.config.gpu_mem_pool = o.device == "cpu" ? 64 : 0.25;  // leave the rest of the GPU alone
  MemoryEngine engine(mo);
  StepOptions so = t.ref.options;
  so.cudnn_graph = o.cudnn_graph;
  so.channels_last = o.channels_last;
  so.device.memory = &engine.resource();
  so.device.planned = engine.planned();
  auto step = t.backend->compile(o.spec, t.shape, so);
  step->set_parameters(t.initial);
  Trained r;
  r.step_memory = step_memory && step->input_buffers();
  const auto source = r.step_memory ? step->input_buffers() : nullptr;
  HostFloats images{SourcedAllocator<float>(source)}, tables{SourcedAllocator<float>(source)};
  HostBytes pixels{SourcedAllocator<uint8_t>(source)};
  const int64_t plane = int64_t(t.shape.height) * t.shape.width;
  for (int s = 0; s < o.steps; ++s) {
    if (feed == Feed::kFloats) {
      const Batch b = random_batch(t.shape, 100 + s);
      images.assign(b.images.begin(), b.images.end());
      step->train(images.data(), b.labels.data(), t.count);
      continue;
    }
    const ByteBatch b = random_byte_batch(t.shape, 100 + s);
    if (feed == Feed::kBytes) {
      pixels.assign(b.pixels.begin(), b.pixels.end());
      tables.assign(b.tables.begin(), b.tables.end());
      step->train_bytes({pixels.data(), tables.data()}, b.labels.data(), t.count, {});
    } else {
      images.resize(size_t(3 * plane) * size_t(t.count));
      expand_byte_images({b.pixels.data(), b.tables.data()}, t.count, t.count, plane,
                         images.data());
      step->train(images.data(), b.labels.data(), t.count);
    }
  }
  step->take_results();
  r.params = step->parameters();
  r.stats = engine.stats();
  return r;
}

// 2. A few training steps with each allocator; identical weights across them
// and whether the batches lie in the step's own input memory or not.
void check_training(SelfTest& t) {
  const auto& o = t.o;
  t.ref.set(t.initial);
  for (int s = 0; s < o.steps; ++s) t.ref.train(random_batch(t.shape, 100 + s), t.count);
  std::vector<std::pair<std::string, Parameters>> trained;
  for (const std::string& allocator : o.allocators) {
    if (allocator == "async" && o.device == "cpu") continue;  // cudaMallocAsync: GPU only
    const Trained r = train_steps(t, allocator, false);
    const Parameters& p = r.params;
    const MemoryStats& stats = r.stats;
    char note[200];
    std::snprintf(note, sizeof note, "%d steps; %llu allocations, peak %.1f MB", o.steps,
                  (unsigned long long)stats.allocations, stats.peak_bytes_in_use / 1e6);
    t.add("train/" + allocator,
          relative_difference(p.values.data(), t.ref.params.values.data(), p.values.size()),
          kTrainTolerance, note);
    trained.push_back({allocator, p});
  }
  if (trained.size() > 1) {
    double worst = 0;
    for (size_t i = 1; i < trained.size(); ++i)
      worst = std::max(worst, relative_difference(trained[i].second.values.data(),
                                                  trained[0].second.values.data(),
                                                  trained[0].second.values.size()));
    t.add("same weights, every allocator", worst, 0, "deterministic algorithms: bit for bit");
  }
  if (trained.empty()) return;
  const Trained direct = train_steps(t, trained.back().first, true);
  if (direct.step_memory)
    t.add("same weights, batches in step memory",
          relative_difference(direct.params.values.data(), trained.back().second.values.data(),
                              direct.params.values.size()),
          0, trained.back().first + ": images sent from the loader's own buffers, bit for bit");
  if (t.shape.channels != 3) return;  // bytes are RGB
  const Trained floats = train_steps(t, trained.back().first, true, Feed::kBytesExpanded);
  const Trained bytes = train_steps(t, trained.back().first, true, Feed::kBytes);
  t.add("same weights, batches as bytes",
        relative_difference(bytes.params.values.data(), floats.params.values.data(),
                            bytes.params.values.size()),
        0, trained.back().first + ": bytes and tables expanded by the step, against their floats");
}

// 3. The pool's invariants on the device's own memory.
void check_pool(SelfTest& t) {
  const auto& o = t.o;
  MemoryEngine upstream(t.memory("direct"));
  PoolOptions po;
  po.initial_bytes = 64u << 20;
  po.minimum_region = 16u << 20;
  PoolResource pool(upstream.resource(), po);
  Rng rng(3);
  std::vector<std::pair<char*, size_t>> live;
  size_t violations = 0;
  for (int i = 0; i < o.pool_operations; ++i) {
    if (live.size() < 500 && (live.empty() || rng.below(2))) {
      const size_t bytes = 1 + rng.below(1 << 18);
      char* p = static_cast<char*>(pool.allocate(bytes));
      violations += reinterpret_cast<uintptr_t>(p) % kAlignment != 0;
      for (const auto& [q, n] : live) violations += p < q + n && q < p + bytes;
      live.push_back({p, bytes});
    } else {
      const size_t k = rng.below(live.size());
      pool.deallocate(live[k].first, live[k].second);
      live[k] = live.back();
      live.pop_back();
    }
  }
  for (const auto& [p, n] : live) pool.deallocate(p, n);
  const MemoryStats s = pool.stats();
  violations += s.bytes_in_use != 0 || s.free_bytes != s.bytes_reserved;
  violations += pool.free_block_count() != pool.region_count();
  t.add("pool invariants", double(violations), 0,
        std::to_string(o.pool_operations) + " random operations on " + o.device + " memory");
}

}  // namespace

SelfTestReport run_selftest(const SelfTestOptions& o) {
  SelfTest t(o);
  check_layers(t);
  if (o.bf16 && o.device != "cpu") {
    const std::string unsupported = t.backend->precision_unsupported("bf16");
    if (unsupported.empty()) {
      check_layers(t, "bf16");
    } else {
      SelfTestRow row{"bf16 layers", !o.bf16_required, 0, 0, unsupported, !o.bf16_required};
      t.report.passed = t.report.passed && row.passed;
      t.report.rows.push_back(row);
    }
  }
  check_weight_gradient_routes(t);
  check_later_gradient_routes(t);
  check_forward_routes(t);
  check_training(t);
  check_pool(t);
  return std::move(t.report);
}

std::string SelfTestReport::table() const {
  std::ostringstream out;
  char line[300];
  std::snprintf(line, sizeof line, "%-34s %-6s %12s %10s  %s\n", "check", "result", "worst",
                "tolerance", "note");
  out << line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-34s %-6s %12.3g %10.3g  %s\n", r.check.c_str(),
                  r.skipped  ? "SKIP"
                  : r.passed ? "PASS"
                             : "FAIL",
                  r.worst, r.tolerance, r.note.c_str());
    out << line;
  }
  out << (passed ? "PASS" : "FAIL") << ": " << rows.size() << " checks\n";
  return out.str();
}

std::string SelfTestReport::summary() const {
  int failed = 0;
  std::string first;
  for (const auto& r : rows)
    if (!r.passed && failed++ == 0) first = r.check;
  if (!failed) return "self-test: PASS (" + std::to_string(rows.size()) + " checks)";
  return "self-test: FAIL (" + std::to_string(failed) + " of " + std::to_string(rows.size()) +
         " checks, first: " + first + ")";
}

}  // namespace histocnn
