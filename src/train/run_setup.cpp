#include "train/run_setup.h"

#include <cstdio>
#include <filesystem>

#include "backends/cuda/cuda_schedule.h"
#include "core/atomic_file.h"
#include "core/checked.h"
#include "core/error.h"
#include "core/machine_memory.h"
#include "core/paths.h"
#include "core/threads.h"
#ifdef HISTOCNN_HAVE_NCCL
#include "backends/cuda/nccl_reducer.h"
#endif
#include "train/recipe.h"
#include "train/run_checks.h"
#include "train/selftest.h"

namespace histocnn {

std::function<void(const std::string&)> root_logger(const TrainOptions& o,
                                                    const Communicator& comm) {
  if (!comm.root()) return [](const std::string&) {};
  if (o.log) return o.log;
  return [](const std::string& line) { std::printf("%s\n", line.c_str()); };
}

namespace {

// The device's half of opening a run: its GPU taken before anything touches
// one (NCCL, the backend's handles, the memory engine's pools), then those.
void open_device(const TrainOptions& o, RunContext& run) {
  if (o.channels_last) {  // a network it cannot lay out is the user's error, found before any GPU
    const std::string why =
        cuda::channels_last_unsupported(infer_shapes(o.spec, o.batch, o.height, o.width));
    require(why.empty(), "--channels-last: " + why);
  }
  run.device = select_device(o.device, run.comm->local_rank());
  if (run.device.is_cuda() && run.comm->size() > 1) {
#ifdef HISTOCNN_HAVE_NCCL
    run.device_reducer = make_nccl_reducer(*run.comm, run.device);
#else
    fail("--device cuda on " + std::to_string(run.comm->size()) +
         " processes: this build has no NCCL (found with the CUDA toolkit)");
#endif
  }
  run.backend = make_backend(run.device);
  MemoryEngineOptions memory;
  memory.device = run.device;
  memory.config = resolve_memory_config(o.memory);
  if (!o.memory_limit.empty())
    memory.limit_bytes = parse_byte_size(o.memory_limit, "--gpu-mem-limit");
  memory.allocation_log = o.allocation_log;
  if (run.device.is_cuda() && o.selftest) {
    // Before the pool reserves its share of the device (and before data work).
    SelfTestOptions checks = quick_selftest_options(o.spec, o.width, o.height);
    // The bf16 rows only when training in bf16, and then they must run.
    checks.bf16 = checks.bf16_required = o.precision == "bf16";
    checks.cudnn_graph = o.cudnn_graph;
    checks.channels_last = o.channels_last;
    const SelfTestReport quick = run_selftest(checks);
    run.log(quick.summary());
    require(quick.passed, "--device cuda: the self-test failed on this GPU:\n" + quick.table() +
                              "(--no-selftest skips it)");
  }
  run.engine = std::make_unique<MemoryEngine>(memory);  // before the step: it allocates there
}

// The loader's float batches (kept ahead of the step, one being filled, one
// being trained on) come from the host whatever the device: refused before
// any data work when the machine cannot hold them.
void require_batches_fit(const TrainOptions& o, int ranks) {
  const int local_batch = (o.batch + ranks - 1) / ranks;
  require_fits_in_memory(
      uint64_t(checked_product({6, local_batch, 3, o.height, o.width, 4}, "--batch x --size")),
      "--batch " + std::to_string(o.batch) + " at --size " + std::to_string(o.width) + "x" +
          std::to_string(o.height) + ": the loader's 6 input batches (32-bit floats)",
      " (use a smaller --batch or --size)");
}

}  // namespace

std::unique_ptr<RunContext> open_run(const TrainOptions& o) {
  auto run = std::make_unique<RunContext>();
  run->comm = o.comm ? o.comm : (run->single = make_single_process_communicator()).get();
  run->log = root_logger(o, *run->comm);
  validate_training_options(o);
  require_batches_fit(o, run->comm->size());
  run->threads = bound_cores(o.threads);
  open_device(o, *run);
  require(!o.output.empty(), "--output: an output folder is required");
  run->paths = run_paths(o.output);
  if (run->comm->root()) {
    check_output_folder(o, run->paths.checkpoint, run->paths.model);
    run->folder = std::make_unique<OutputFolder>(o.output);
    run->lock = std::make_unique<RunLock>(o.output);
    prepare_output_file("--output", run->paths.metrics);
    remove_stale_temporaries(o.output);
    // A run replaced (--force) without checkpoints must not leave the old
    // run's checkpoint beside the new model.
    std::error_code ec;  // none there: nothing to remove
    if (!o.checkpoints) std::filesystem::remove(run->paths.checkpoint, ec);
  }
  return run;
}

namespace {

void log_step(const RunContext& run, const TrainingStep& step) {
  const MemoryReport m = step.memory();
  char line[300];
  std::snprintf(line, sizeof line,
                "memory: %s; step peak %.1f MB (activations + workspaces) + %.1f MB "
                "parameters, gradients, Adam state",
                run.engine->describe().c_str(), m.activation_bytes / 1e6, m.parameter_bytes / 1e6);
  run.log(line);
  for (const auto& a : step.details().value("algorithms", nlohmann::json::array())) {
    std::string text = "cudnn " + a.value("layer", "") + ": forward " + a.value("forward", "") +
                       (a.value("fused_bias_relu", false) ? " (+bias+ReLU fused)" : "") +
                       ", backward filter " + a.value("backward_filter", "");
    if (a.contains("backward_data")) text += ", backward data " + a.value("backward_data", "");
    run.log(text + " [" + a.value("chosen_by", "") + "]");
  }
}

}  // namespace

std::unique_ptr<TrainingStep> compile_training_step(const TrainOptions& o, RunContext& run,
                                                    const ExampleSet& train_set, int local_batch) {
  const int ranks = run.comm->size();
  const NetworkShape shape = infer_shapes(o.spec, local_batch, o.height, o.width);
  require(!shape.has_batch_norm() || o.batch % ranks == 0,
          "--batch " + std::to_string(o.batch) + " on " + std::to_string(ranks) +
              " processes: a batch-norm model needs the batch to split evenly (each process "
              "normalises its own share, as PyTorch's BatchNorm under DDP)");
  require(!shape.has_batch_norm() || int(train_set.examples.size()) >= o.batch,
          "--batch " + std::to_string(o.batch) +
              ": a batch-norm model needs at least one full batch of training examples");
  StepOptions so;
  so.adam = o.adam;
  so.label_smoothing = o.label_smoothing;
  so.dropout_seed = o.seed ^ 0xD50u;
  so.device.memory = &run.engine->resource();
  so.device.planned = run.engine->planned();
  so.precision = o.precision;
  so.flush_denormals = o.flush_denormals;
  so.cpu_winograd = o.winograd;
  so.cudnn_benchmark = o.cudnn_benchmark;
  so.cudnn_graph = o.cudnn_graph;
  so.channels_last = o.channels_last;
  so.cuda_graphs = o.cuda_graphs;
  so.profile_layers = o.profile_layers;
  Communicator* comm = run.comm;
  if (run.device_reducer)
    so.reduce_gradients = run.device_reducer;  // device memory, the step's stream
  else if (ranks > 1)
    so.reduce_gradients = [comm](float* gradients, int64_t count, StreamHandle) {
      comm->allreduce_sum(gradients, size_t(count));
    };
  auto step = run.backend->compile(o.spec, shape, so);
  log_step(run, *step);
  return step;
}

namespace {

// `what` (the checkpoint, or "--init FILE") must be the network and input
// size of this run; the error names the flag that differs.
void require_same_model(const TrainOptions& o, const ModelFile& file, const std::string& what) {
  const std::string size = std::to_string(o.width) + "x" + std::to_string(o.height),
                    recorded = std::to_string(file.width) + "x" + std::to_string(file.height);
  require(file.width == o.width && file.height == o.height,
          what + ": trained at --size " + recorded + ", this run asks for --size " + size +
              " (use the same --size" + (o.resume ? ", or train into another folder)" : ")"));
  require(file.spec.text() == o.spec.text(),
          what + ": trained with another network (--model / --preset) than this run's");
}

TrainState resume(const TrainOptions& o, const RunContext& run, TrainingStep& step,
                  Normalization* normalization) {
  const std::string& path = run.paths.checkpoint;
  ModelFile ck = load_model_file(path);
  require_same_model(o, ck, path);
  require(ck.has_optimizer, path + ": not a checkpoint (no optimizer state)");
  if (!o.force_resume) require_same_settings(ck.trained, training_settings(o), path);
  if (o.normalize && !ck.normalization.text().empty()) *normalization = ck.normalization;
  step.set_parameters(ck.params);
  step.set_buffers(ck.buffers);
  step.set_optimizer_state(ck.m, ck.v, ck.state.value("step", int64_t(0)));
  TrainState state;
  state.start_epoch = ck.state.value("epoch", 0);
  state.history = ck.state.value("history", nlohmann::json::array());
  state.best = ck.state.value("best", nlohmann::json::object());
  state.calibration = ck.trained.value("calibration", nlohmann::json());
  // What metrics.json says of validation if no epoch is left to run.
  if (!state.history.empty())
    state.last_validation = state.history.back().value("validation", nlohmann::json());
  run.log("resumed from " + path + " at epoch " + std::to_string(state.start_epoch));
  return state;
}

}  // namespace

TrainState restore_or_initialise(const TrainOptions& o, const RunContext& run, TrainingStep& step,
                                 Normalization* normalization) {
  if (o.resume && std::filesystem::exists(run.paths.checkpoint))
    return resume(o, run, step, normalization);
  if (!o.init.empty()) {
    const ModelFile init = load_model_file(o.init);
    require_same_model(o, init, "--init " + o.init);
    step.set_parameters(init.params);
    step.set_buffers(init.buffers);
    return {};
  }
  if (o.resume) run.log("no checkpoint in " + o.output + ": starting from scratch");
  step.set_parameters(Parameters::glorot(step.shape(), o.seed));
  return {};
}

ModelFile model_metadata(const TrainOptions& o, const Normalization& normalization,
                         const CropOptions& crops, const LabelScheme& labels) {
  ModelFile file;
  file.spec = o.spec;
  file.width = o.width;
  file.height = o.height;
  file.crop = o.crops.whole_image
                  ? "whole"
                  : std::to_string(o.crops.crop_width) + "x" + std::to_string(o.crops.crop_height);
  if (!o.crops.whole_image) {  // whole images vary in size: no one scale
    file.mpp_x = o.image_mpp * o.crops.crop_width / o.width;
    file.mpp_y = o.image_mpp * o.crops.crop_height / o.height;
  }
  file.normalization = normalization;
  file.stain_target = crops.stain_target;
  file.labels = labels;
  file.trained = training_settings(o);
  file.trained["class_crops"] = crops.class_crops;
  return file;
}

}  // namespace histocnn
