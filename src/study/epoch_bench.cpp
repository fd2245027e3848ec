#include "study/epoch_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "backends/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/loader.h"
#include "memory/memory_engine.h"
#include "study/bench_examples.h"
#include "study/machine_ceilings.h"
#include "study/study.h"
#include "train/step_batches.h"

namespace histocnn {
namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json per_step(const StepProfile& p, const StepProfile& before) {
  const double steps = std::max<double>(1, double(p.steps - before.steps));
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& [name, seconds] : p.layers) {
    const auto b = before.layers.find(name);
    layers[name] = 1e3 * (seconds - (b == before.layers.end() ? 0.0 : b->second)) / steps;
  }
  return {{"forward_ms", 1e3 * (p.forward - before.forward) / steps},
          {"backward_ms", 1e3 * (p.backward - before.backward) / steps},
          {"update_ms", 1e3 * (p.update - before.update) / steps},
          {"allocator_ms", 1e3 * (p.allocator - before.allocator) / steps},
          {"layer_ms", layers}};
}

// The examples one epoch trains on: all, but with batch norm only whole
// batches (a short last batch would be normalised by too few rows).
std::vector<int> trained_order(const std::vector<int>& order, int batch, bool batch_norm) {
  if (!batch_norm) return order;
  const size_t whole = order.size() - order.size() % size_t(batch);
  return {order.begin(), order.begin() + long(whole)};
}

// Loader threads as training has them, unless --loader-workers says otherwise.
int loader_workers(const EpochBenchOptions& o, int threads) {
  return o.loader_workers >= 0 ? o.loader_workers : loader_workers_for(o.device == "cpu", threads);
}

nlohmann::json measure_point(const EpochBenchOptions& o, const Device& device, Backend& backend,
                             const ExampleSet& set, const std::vector<int>& order, int batch,
                             int threads) {
  MemoryEngineOptions memory;
  memory.device = device;
  memory.config.allocator = o.allocator;
  memory.config.gpu_mem_pool = 0.9;
  memory.config.source = "histocnn bench";
  MemoryEngine engine(memory);
  const ModelSpec& spec = o.spec;
  const NetworkShape shape = infer_shapes(spec, batch, set.height, set.width);
  StepOptions options;
  options.precision = o.precision;
  options.cuda_graphs = o.cuda_graphs;
  options.cudnn_graph = o.cudnn_graph;
  options.channels_last = o.channels_last;
  if (o.plain_conv1) {
    options.cuda_conv1_forward_route = "cudnn";
    options.cuda_small_wgrad_route = "direct";
  }
  if (o.cudnn_later_wgrad) options.cuda_pooled_wgrad_route = "cudnn";
  if (o.cudnn_later_dgrad) options.cuda_pooled_dgrad_route = "cudnn";
  options.profile_layers = o.profile_layers;
  options.cpu_onednn_pooling = o.onednn_pool;
  options.cpu_onednn_conv1 = o.onednn_conv1;
  options.cpu_winograd = !o.direct_conv;
  options.cpu_winograd_weights = !o.direct_conv_weights;
  options.cpu_pooled_weight_gradients = !o.onednn_wgrad;
  options.cpu_pooled_data_gradients = !o.onednn_dgrad;
  options.cpu_own_winograd_forward = !o.onednn_forward;
  if (o.slice_kb >= 0) options.cpu_slice_bytes = size_t(o.slice_kb) << 10;
  options.device.memory = &engine.resource();
  options.device.planned = engine.planned();
  auto step = backend.compile(spec, shape, options);
  step->set_parameters(Parameters::glorot(shape, 1));
  // As training does (Trainer::plan_epoch): batch norm drops a short last batch.
  const std::vector<int> trained = trained_order(order, batch, shape.has_batch_norm());
  std::vector<double> times, waits;
  BatchPool buffers;  // kept from epoch to epoch, as training keeps them
  buffers.use_source(o.staged_batches ? nullptr : step->input_buffers(),
                     image_form_for(*step, AugmentOptions{}, o.float_batches));
  StepProfile before;
  for (int epoch = 0; epoch < o.warmup + o.epochs; ++epoch) {
    if (epoch == o.warmup) before = step->profile();
    const auto start = Clock::now();
    BatchLoader loader(set, trained, batch, AugmentOptions{}, uint64_t(epoch + 1),
                       loader_workers(o, threads), 4, Normalization{}, &buffers);
    for (Batch b; loader.next(b);) train_on(*step, b);
    if (step->deferred_results()) step->take_results();  // waits for the device
    times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    waits.push_back(loader.wait_seconds());
  }
  times.erase(times.begin(), times.begin() + o.warmup);
  waits.erase(waits.begin(), waits.begin() + o.warmup);
  const int64_t device_growth = engine.device_growth_bytes();  // the step still alive
  const MemoryReport report = step->memory();
  const MemoryStats stats = engine.stats();
  const double s = median(times);
  const double examples = double(trained.size());
  const double epoch_gflop =
      infer_shapes(spec, 1, set.height, set.width).training_flops() * examples / 1e9;
  return {{"size", set.height},
          {"batch", batch},
          {"examples_trained", trained.size()},
          {"epoch_gflop", epoch_gflop},
          {"epoch_seconds", s},
          {"epoch_seconds_all", times},
          // What the epoch's consumer waited for batches (0 workers: prepared them).
          {"data_wait_seconds", median(waits)},
          {"images_per_second", examples / s},
          {"peak_memory_bytes", stats.peak_bytes_in_use},
          {"peak_reserved_bytes", stats.peak_bytes_reserved},
          {"planned_memory_bytes", report.activation_bytes + report.parameter_bytes},
          {"device_malloc_calls", stats.upstream_allocations},
          // CUDA: the device memory the point took, libraries included (null on the host).
          {"device_growth_bytes", device_growth >= 0 ? nlohmann::json(device_growth) : nullptr},
          {"per_step", per_step(step->profile(), before)},
          {"backend", step->details()}};
}

}  // namespace

nlohmann::json run_epoch_bench(const EpochBenchOptions& o) {
  require(o.warmup >= 0 && o.epochs >= 1, "--epochs must be at least 1 and --warmup at least 0");
  const int threads = bound_cores(o.threads);
  // One backend (on CUDA: the handles) for every point; no device is an error here.
  const Device device = select_device(o.device);
  const std::unique_ptr<Backend> backend = make_backend(device);
  nlohmann::json out = {{"engine", "histocnn"},
                        {"device", o.device},
                        {"model", o.model.empty() ? "paper" : o.model},
                        {"precision", o.precision},
                        {"allocator", o.allocator},
                        {"cuda_graphs", o.cuda_graphs},
                        {"cudnn_graph", o.cudnn_graph},
                        {"channels_last", o.channels_last},
                        {"threads", threads},
                        {"loader_workers", loader_workers(o, threads)},
                        {"staged_batches", o.staged_batches},
                        {"float_batches", o.float_batches},
                        {"plain_conv1", o.plain_conv1},
                        {"cudnn_later_wgrad", o.cudnn_later_wgrad},
                        {"cudnn_later_dgrad", o.cudnn_later_dgrad},
                        {"examples", o.benign + o.malignant},
                        {"pixels", o.pixels},
                        {"points", nlohmann::json::array()}};
  if (o.ceilings) {
    out["ceilings"] = measure_ceilings(threads);
    std::printf("%s\n", ceilings_line(out["ceilings"]).c_str());
  }
  for (int size : o.sizes) {
    const ExampleSet set = bench_examples(o.pixels, size, o.benign, o.malignant);
    std::vector<int> order(set.examples.size());
    std::iota(order.begin(), order.end(), 0);
    Rng rng(7);
    std::shuffle(order.begin(), order.end(), rng);
    for (int batch : o.batches) {
      nlohmann::json point;
      try {
        point = measure_point(o, device, *backend, set, order, batch, threads);
        std::printf("%5d %6d %10.4f s/epoch %10.0f img/s  peak %8.1f MB\n", size, batch,
                    point["epoch_seconds"].get<double>(), point["images_per_second"].get<double>(),
                    point["peak_memory_bytes"].get<double>() / 1e6);
      } catch (const Error& e) {  // out of memory at a large point: record it, go on
        point = {{"size", size}, {"batch", batch}, {"error", e.what()}};
        std::printf("%5d %6d failed: %s\n", size, batch, e.what());
      }
      std::fflush(stdout);
      out["points"].push_back(point);
    }
  }
  return out;
}

}  // namespace histocnn
