#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/counter_hash.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/rng.h"
#include "core/run_lock.h"
#include "core/threads.h"
#include "data/loader.h"
#include "memory/memory_engine.h"
#ifdef HISTOCNN_HAVE_NCCL
#include "backends/cuda/nccl_reducer.h"
#endif
#include "train/checkpoint.h"
#include "train/recipe.h"
#include "train/selftest.h"

namespace histocnn {
namespace fs = std::filesystem;

void select_images(const DataSelection& s, std::vector<SlideImage>* train,
                   std::vector<SlideImage>* validation) {
  const GlasFolder folder = open_glas_folder(s.folder, s.split);
  train->clear();
  validation->clear();
  if (!s.val_split.empty()) {
    *train = folder.images;
    *validation = open_glas_folder(s.folder, s.val_split).images;
    // What trains must not be what validates: a split that contains the
    // validation split (all vs testA, train vs train_1) would report the
    // accuracy of images the network has seen.
    std::set<std::string> trained;
    for (const auto& im : *train) trained.insert(im.name);
    int both = 0;
    std::string example;
    for (const auto& im : *validation)
      if (trained.count(im.name)) both++, example = example.empty() ? im.name : example;
    require(both == 0, "--split " + s.split + " and --val-split " + s.val_split + ": " +
                           std::to_string(both) + " of the " + std::to_string(validation->size()) +
                           " validation images are also training images (e.g. " + example +
                           "); choose splits that do not overlap");
    return;
  }
  if (s.folds == 0) {
    *train = folder.images;
    return;
  }
  require(s.fold >= 0 && s.fold < s.folds, "--fold: must be in 0.." + std::to_string(s.folds - 1));
  const auto folds = patient_folds(folder.images, s.folds, s.fold_seed);
  for (size_t i = 0; i < folder.images.size(); ++i)
    (folds[i] == s.fold ? validation : train)->push_back(folder.images[i]);
}

namespace {

std::string format_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

void progress_bar(int done, int total, double elapsed, double loss) {
  const int width = 30, filled = total ? done * width / total : width;
  const double eta = done ? elapsed / done * (total - done) : 0;
  std::fprintf(stderr, "\r  [%s%s] %d/%d loss %.4f eta %s ", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(), done, total, loss,
               format_seconds(eta).c_str());
  std::fflush(stderr);
}

}  // namespace

void export_examples(const ExampleSet& set, const std::string& path) {
  // Header line (JSON), then labels (int32) and pixels (uint8 NHWC).
  nlohmann::json header = {{"count", set.examples.size()},
                           {"height", set.height},
                           {"width", set.width},
                           {"channels", 3},
                           {"layout", "NHWC uint8, labels int32 first"}};
  std::string content = header.dump() + "\n";
  for (const auto& e : set.examples) {
    const int32_t label = e.label;
    content.append(reinterpret_cast<const char*>(&label), sizeof label);
  }
  content.append(reinterpret_cast<const char*>(set.pixels.data()), set.pixels.size());
  write_file_atomically(path, content);
}

namespace {

double selection_value(const std::string& metric, const EvalReport& report) {
  if (metric == "image_auc") return report.per_image.auc;
  if (metric == "image_accuracy") return report.per_image.accuracy;
  if (metric == "image_balanced_accuracy") return report.per_image.balanced_accuracy;
  return report.per_crop.accuracy;
}

}  // namespace

namespace {

// Data parallelism: each process decodes every N-th image; the examples are
// then exchanged so every process holds the whole set (any example may fall
// in its slice after a shuffle) — identical to a single process's set.
ExampleSet build_shared_examples(const std::vector<SlideImage>& images, const CropOptions& crops,
                                 int width, int height, int threads, Communicator& comm) {
  // Fresh crops redraw from every image each epoch: every process keeps all
  // of them (small, at the crop's scale) and draws the same positions.
  if (comm.size() == 1 || crops.fresh_each_epoch)
    return build_examples(images, crops, width, height, threads);
  const auto mine = [&](size_t image) { return int(image % size_t(comm.size())) == comm.rank(); };
  ExampleSet set = build_examples(images, crops, width, height, threads, mine);
  const size_t per = size_t(width) * height * 3;
  std::string packed;  // (example, x, y, pixels) for the examples of my images
  for (size_t e = 0; e < set.examples.size(); ++e) {
    if (!mine(size_t(set.examples[e].image_index))) continue;
    const int64_t header[3] = {int64_t(e), set.examples[e].x, set.examples[e].y};
    packed.append(reinterpret_cast<const char*>(header), sizeof header);
    packed.append(reinterpret_cast<const char*>(set.pixels_of(e)), per);
  }
  const size_t record = 3 * sizeof(int64_t) + per;
  for (const std::string& part : comm.allgather(packed)) {
    require(part.size() % record == 0, "example exchange: a process sent a torn record");
    for (size_t at = 0; at < part.size(); at += record) {
      int64_t header[3];
      std::memcpy(header, part.data() + at, sizeof header);
      require(header[0] >= 0 && size_t(header[0]) < set.examples.size(),
              "example exchange: unknown example");
      const size_t e = size_t(header[0]);
      set.examples[e].x = int(header[1]);
      set.examples[e].y = int(header[2]);
      std::memcpy(set.pixels.data() + e * per, part.data() + at + sizeof header, per);
    }
  }
  return set;
}

}  // namespace

std::function<void(const std::string&)> root_logger(const TrainOptions& o,
                                                    const Communicator& comm) {
  if (!comm.root()) return [](const std::string&) {};
  if (o.log) return o.log;
  return [](const std::string& line) { std::printf("%s\n", line.c_str()); };
}

TrainingData prepare_training_data(const TrainOptions& o, Communicator& comm, int threads) {
  TrainingData d;
  select_images(o.data, &d.train_images, &d.val_images);
  require(o.select_by == "none" || !d.val_images.empty(),
          "--select-by: needs validation images (--folds or --val-split)");
  const auto t0 = std::chrono::steady_clock::now();
  d.crops = o.crops;
  require(o.stain_normalize == "none" || o.stain_normalize == "macenko" ||
              o.stain_normalize == "macenko-residual",
          "--stain-normalize: expected none, macenko or macenko-residual, got '" +
              o.stain_normalize + "'");
  d.crops.stain_keep_residual = o.stain_normalize == "macenko-residual";
  // The target depends only on the training images, so every process (and a
  // resumed run) computes the same one; it is stored in the model file.
  if (o.stain_normalize != "none")
    d.crops.stain_target = estimate_stain_target(d.train_images, threads);
  d.train_set = build_shared_examples(d.train_images, d.crops, o.width, o.height, threads, comm);
  if (!d.val_images.empty()) {
    CropOptions vc = d.crops;
    vc.fresh_each_epoch = false;  // validation crops stay fixed: comparable epochs
    vc.seed = o.crops.seed + 7919;
    int benign = 0, malignant = 0;
    for (const auto& im : d.val_images) (im.label ? malignant : benign)++;
    vc.benign_crops = benign * o.val_crops_per_image;
    vc.malignant_crops = malignant * o.val_crops_per_image;
    d.val_set = build_shared_examples(d.val_images, vc, o.width, o.height, threads, comm);
  }
  if (o.normalize) d.normalization = channel_statistics(d.train_set);
  d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

nlohmann::json run_training(const TrainOptions& o, const TrainingData* prepared) {
  std::unique_ptr<Communicator> single;
  Communicator* comm = o.comm ? o.comm : (single = make_single_process_communicator()).get();
  const bool root = comm->root();
  const int ranks = comm->size();
  const auto log = root_logger(o, *comm);
  validate_training_options(o);
  const int threads = bound_cores(o.threads);
  // CUDA: this process takes its GPU (rank k on GPU k) before anything
  // touches one — NCCL, the backend's handles, the memory engine's pools.
  select_device(o.device, comm->local_rank());
  std::function<void(float*, int64_t, StreamHandle)> device_reducer;
  if (o.device == "cuda" && ranks > 1) {
#ifdef HISTOCNN_HAVE_NCCL
    device_reducer = make_nccl_reducer(*comm);
#else
    fail("--device cuda on " + std::to_string(ranks) +
         " processes: this build has no NCCL (found with the CUDA toolkit)");
#endif
  }
  auto backend = make_backend(o.device);  // an unknown device fails before any work
  MemoryEngineOptions memory_options;
  memory_options.device = o.device;
  memory_options.config = resolve_memory_config(o.memory);
  if (!o.memory_limit.empty())
    memory_options.limit_bytes = parse_byte_size(o.memory_limit, "--gpu-mem-limit");
  memory_options.allocation_log = o.allocation_log;
  if (o.device == "cuda" && o.selftest) {
    // Before the pool reserves its share of the device (and before data work).
    const SelfTestReport quick = run_selftest(quick_selftest_options(o.spec, o.width, o.height));
    log(quick.summary());
    require(quick.passed, "--device cuda: the self-test failed on this GPU:\n" + quick.table() +
                              "(--no-selftest skips it)");
  }
  MemoryEngine engine(memory_options);  // before the step: it allocates through it
  require(!o.output.empty(), "--output: an output folder is required");
  const std::string checkpoint_path = (fs::path(o.output) / "checkpoint.safetensors").string();
  const std::string model_path = (fs::path(o.output) / "model.safetensors").string();
  const std::string best_path = (fs::path(o.output) / "model.best.safetensors").string();
  const std::string metrics_path = (fs::path(o.output) / "metrics.json").string();
  std::optional<RunLock> lock;
  if (root) {
    check_output_folder(o, checkpoint_path, model_path);
    make_directories(o.output);
    lock.emplace(o.output);  // one writer per run folder
    prepare_output_file("--output", metrics_path);
    remove_stale_temporaries(o.output);
  }

  // Data: prepared here, or once for every member of an ensemble.
  TrainingData own;
  if (!prepared || o.crops.fresh_each_epoch)  // fresh crops redraw the set: a member's own copy
    own = prepared ? *prepared : prepare_training_data(o, *comm, threads);
  const TrainingData& data = prepared && !o.crops.fresh_each_epoch ? *prepared : own;
  if (!o.export_examples.empty()) {
    if (root) export_examples(data.train_set, o.export_examples);
    log("wrote " + std::to_string(data.train_set.examples.size()) + " examples to " +
        o.export_examples);
    return {{"exported", o.export_examples}};
  }
  const ExampleSet& train_set = data.train_set;
  const ExampleSet& val_set = data.val_set;
  const std::vector<SlideImage>& train_images = data.train_images;
  const std::vector<SlideImage>& val_images = data.val_images;
  const CropOptions& crops = data.crops;
  // Recomputed from the training crops; a resumed run takes the checkpoint's.
  Normalization normalization = data.normalization;
  log("data: " + std::to_string(train_images.size()) + " train images -> " +
      std::to_string(train_set.examples.size()) + " examples, " +
      std::to_string(val_images.size()) + " validation images -> " +
      std::to_string(val_set.examples.size()) + " examples (" + format_seconds(data.seconds) +
      (prepared ? ", shared by the ensemble's members)" : ")"));

  // Model.
  // Each process computes its slice of every global batch: at most this many rows.
  const int local_batch = (o.batch + ranks - 1) / ranks;
  const NetworkShape shape = infer_shapes(o.spec, local_batch, o.height, o.width);
  require(!shape.has_batch_norm() || o.batch % ranks == 0,
          "--batch " + std::to_string(o.batch) + " on " + std::to_string(ranks) +
              " processes: a batch-norm model needs the batch to split evenly (each process "
              "normalises its own share, as PyTorch's BatchNorm under DDP)");
  require(!shape.has_batch_norm() || int(train_set.examples.size()) >= o.batch,
          "--batch " + std::to_string(o.batch) +
              ": a batch-norm model needs at least one full "
              "batch of training examples");
  StepOptions step_options;
  step_options.adam = o.adam;
  step_options.dropout_seed = o.seed ^ 0xD50u;
  step_options.device.memory = &engine.resource();
  step_options.device.planned = engine.planned();
  step_options.precision = o.precision;
  step_options.cudnn_benchmark = o.cudnn_benchmark;
  step_options.cuda_graphs = o.cuda_graphs;
  step_options.profile_layers = o.profile_layers;
  if (device_reducer)
    step_options.reduce_gradients = device_reducer;  // device memory, the step's stream
  else if (ranks > 1)
    step_options.reduce_gradients = [comm](float* gradients, int64_t count, StreamHandle) {
      comm->allreduce_sum(gradients, size_t(count));
    };
  auto step = backend->compile(o.spec, shape, step_options);
  {
    const MemoryReport m = step->memory();
    char line[300];
    std::snprintf(line, sizeof line,
                  "memory: %s; step peak %.1f MB (activations + workspaces) + %.1f MB "
                  "parameters, gradients, Adam state",
                  engine.describe().c_str(), m.activation_bytes / 1e6, m.parameter_bytes / 1e6);
    log(line);
    for (const auto& a : step->details().value("algorithms", nlohmann::json::array())) {
      std::string text = "cudnn " + a.value("layer", "") + ": forward " + a.value("forward", "") +
                         (a.value("fused_bias_relu", false) ? " (+bias+ReLU fused)" : "") +
                         ", backward filter " + a.value("backward_filter", "");
      if (a.contains("backward_data")) text += ", backward data " + a.value("backward_data", "");
      log(text + " [" + a.value("chosen_by", "") + "]");
    }
  }
  const std::string crop_text = o.crops.whole_image ? "whole"
                                                    : std::to_string(o.crops.crop_width) + "x" +
                                                          std::to_string(o.crops.crop_height);
  auto require_same_model = [&](const ModelFile& file, const std::string& what) {
    require(file.spec.text() == o.spec.text() && file.width == o.width && file.height == o.height,
            what + ": trained for another model or input size (" + std::to_string(file.width) +
                "x" + std::to_string(file.height) + ")");
  };
  const nlohmann::json trained = training_settings(o);
  int start_epoch = 0;
  nlohmann::json history = nlohmann::json::array();
  nlohmann::json best = nlohmann::json::object();  // {"metric", "value", "epoch"} once one is kept
  if (o.resume && fs::exists(checkpoint_path)) {
    ModelFile ck = load_model_file(checkpoint_path);
    require_same_model(ck, checkpoint_path);
    require(ck.has_optimizer, checkpoint_path + ": not a checkpoint (no optimizer state)");
    if (!o.force_resume) require_same_settings(ck.trained, trained, checkpoint_path);
    if (o.normalize && !ck.normalization.text().empty()) normalization = ck.normalization;
    step->set_parameters(ck.params);
    step->set_buffers(ck.buffers);
    step->set_optimizer_state(ck.m, ck.v, ck.state.value("step", int64_t(0)));
    start_epoch = ck.state.value("epoch", 0);
    history = ck.state.value("history", nlohmann::json::array());
    best = ck.state.value("best", nlohmann::json::object());
    log("resumed from " + checkpoint_path + " at epoch " + std::to_string(start_epoch));
  } else if (o.resume && o.init.empty()) {
    log("no checkpoint in " + o.output + ": starting from scratch");
    step->set_parameters(Parameters::glorot(shape, o.seed));
  } else if (!o.init.empty()) {
    ModelFile init = load_model_file(o.init);
    require_same_model(init, "--init " + o.init);
    step->set_parameters(init.params);
    step->set_buffers(init.buffers);
  } else {
    step->set_parameters(Parameters::glorot(shape, o.seed));
  }
  log("model: " + std::to_string(shape.parameter_count()) + " parameters, input " +
      std::to_string(o.width) + "x" + std::to_string(o.height) + ", batch " +
      std::to_string(o.batch) + ", device " + o.device + ", " + std::to_string(threads) +
      " threads, " + std::to_string(shape.training_flops() / o.batch / 1e9).substr(0, 5) +
      " GFLOP per example per step");

  auto current_model = [&] {
    ModelFile file;
    file.spec = o.spec;
    file.width = o.width;
    file.height = o.height;
    file.crop = crop_text;
    if (!o.crops.whole_image) {  // whole images vary in size: no one scale
      file.mpp_x = o.image_mpp * o.crops.crop_width / o.width;
      file.mpp_y = o.image_mpp * o.crops.crop_height / o.height;
    }
    file.normalization = normalization;
    file.stain_target = crops.stain_target;
    file.trained = trained;
    file.params = step->parameters();
    file.buffers = step->buffers();
    return file;
  };
  const bool show_bar = o.progress && ::isatty(STDERR_FILENO);
  Rng order_rng(o.seed ^ 0x0DE5u);
  for (int e = 0; e < start_epoch; ++e) order_rng.next();  // same order as an uninterrupted run
  nlohmann::json last_eval;
  for (int epoch = start_epoch; epoch < o.epochs; ++epoch) {
    Rng epoch_rng(order_rng.next());
    std::vector<int> order(train_set.examples.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), epoch_rng);
    // This process's slice of every global batch (all of it with one process).
    std::vector<int> mine, sizes;
    std::vector<BatchSlice> slices;
    for (size_t begin = 0; begin < order.size(); begin += size_t(o.batch)) {
      const int rows = int(std::min(order.size() - begin, size_t(o.batch)));
      // Batch norm normalises by the batch's statistics: a short last batch
      // is dropped (other examples each epoch: the order is reshuffled).
      if (shape.has_batch_norm() && rows < o.batch) break;
      const RowRange r = rows_of_rank(rows, comm->rank(), ranks);
      mine.insert(mine.end(), order.begin() + long(begin) + r.begin,
                  order.begin() + long(begin) + r.end);
      sizes.push_back(r.count());
      slices.push_back({rows, r.begin});
    }
    // New crop positions every epoch (from the images kept at the crop's
    // scale); seeded by the epoch, so a resumed run draws the same ones.
    if (o.crops.fresh_each_epoch && epoch > 0)
      recrop(own.train_set, o.crops.seed ^ mix64(uint64_t(epoch)));  // data is `own` here
    // Loader workers beside the compute threads: one fewer than the cores
    // given (none with one core: next() prepares each batch itself).
    BatchLoader loader(train_set, mine, sizes, local_batch, o.augment, epoch_rng.next(),
                       threads - 1, 4, normalization);
    const StepProfile profile_before = step->profile();
    const auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int correct = 0, seen = 0, done = 0, counted = 0;
    // Device backends accumulate loss and correct count on the device and
    // hand them over every kDivergenceCheck steps (no host sync per step).
    constexpr int kDivergenceCheck = 20;
    auto absorb = [&](const StepResult& r, int rows) {
      if (!std::isfinite(r.loss_sum))
        throw DivergenceError("training diverged: loss is " + std::to_string(r.loss_sum) +
                              " at epoch " + std::to_string(epoch + 1) +
                              kept_checkpoint(checkpoint_path) + " (try a lower --lr)");
      loss_sum += r.loss_sum;
      correct += r.correct;
      counted += rows;
    };
    const bool scheduled = o.schedule.kind != "constant" || o.schedule.warmup_epochs > 0;
    const int64_t steps_per_epoch = int64_t(sizes.size());
    for (Batch b; loader.next(b);) {
      if (scheduled)
        step->set_learning_rate(float(learning_rate_at(o.schedule, o.adam.learning_rate,
                                                       int64_t(epoch) * steps_per_epoch + done,
                                                       steps_per_epoch, o.epochs)));
      const StepResult r = step->train_slice(b.images.data(), b.labels.data(), b.count,
                                             ranks > 1 ? slices[size_t(done)] : BatchSlice{});
      seen += b.count;
      ++done;
      if (!step->deferred_results())
        absorb(r, b.count);
      else if (done % kDivergenceCheck == 0)
        absorb(step->take_results(), seen - counted);
      if (show_bar)
        progress_bar(
            done, loader.batches(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
            counted ? loss_sum / counted : 0.0);
    }
    if (step->deferred_results() && counted < seen) absorb(step->take_results(), seen - counted);
    if (ranks > 1) {  // the epoch's sums over every process
      double sums[3] = {loss_sum, double(correct), double(seen)};
      comm->allreduce_sum(sums, 3);
      loss_sum = sums[0];
      correct = int(sums[1]);
      seen = int(sums[2]);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (show_bar) std::fprintf(stderr, "\r%*s\r", 80, "");
    nlohmann::json row = {{"epoch", epoch + 1},
                          {"loss", loss_sum / seen},
                          {"train_accuracy", double(correct) / seen},
                          {"seconds", seconds},
                          {"images_per_second", seen / seconds},
                          {"data_wait_seconds", loader.wait_seconds()}};
    const StepProfile p = step->profile();
    row["profile"] = {{"steps", p.steps - profile_before.steps},
                      {"forward_seconds", p.forward - profile_before.forward},
                      {"backward_seconds", p.backward - profile_before.backward},
                      {"update_seconds", p.update - profile_before.update},
                      {"allocator_seconds", p.allocator - profile_before.allocator},
                      {"data_wait_seconds", loader.wait_seconds()}};
    if (!p.layers.empty()) {
      nlohmann::json layers = nlohmann::json::object();
      for (const auto& [name, total] : p.layers) {
        auto before = profile_before.layers.find(name);
        layers[name] = total - (before == profile_before.layers.end() ? 0.0 : before->second);
      }
      row["profile"]["layer_seconds"] = layers;
    }
    char line[256];
    std::snprintf(line, sizeof line, "epoch %d/%d  loss %.4f  train acc %.3f", epoch + 1, o.epochs,
                  loss_sum / seen, double(correct) / seen);
    std::string text = line;
    if (ranks > 1 && shape.has_batch_norm()) {
      // Each process normalised its own share of every batch (PyTorch's
      // BatchNorm under DDP): rank 0's running statistics become everyone's,
      // as DDP's broadcast_buffers does, so all processes predict alike.
      Buffers b = step->buffers();
      comm->broadcast(b.values.data(), b.values.size() * sizeof(float));
      step->set_buffers(b);
    }
    // The epoch's last update can blow the weights up after its loss was
    // computed: check them before validation predicts with them.
    if (!all_finite(step->parameters().values))
      throw DivergenceError("training diverged: the weights are not finite after epoch " +
                            std::to_string(epoch + 1) + kept_checkpoint(checkpoint_path) +
                            " (try a lower --lr)");
    if (!val_set.examples.empty()) {
      const EvalReport report = [&] {
        try {
          return evaluate(*step, val_set, normalization, comm);
        } catch (const NonFiniteScores& e) {
          throw DivergenceError("training diverged after epoch " + std::to_string(epoch + 1) +
                                ": " + e.what() + kept_checkpoint(checkpoint_path) +
                                " (try a lower --lr)");
        }
      }();
      last_eval = report.to_json();
      row["validation"] = last_eval;
      std::snprintf(line, sizeof line, "  val acc %.3f (image %.3f, patient %.3f)",
                    report.per_crop.accuracy, report.per_image.accuracy,
                    report.per_patient.accuracy);
      text += line;
      if (o.select_by != "none") {
        const double value = selection_value(o.select_by, report);
        if (best.empty() || value > best["value"].get<double>()) {
          best = {{"metric", o.select_by}, {"value", value}, {"epoch", epoch + 1}};
          if (root) save_model_file(best_path, current_model());
          text += "  *best*";
        }
      }
    }
    std::snprintf(line, sizeof line, "  %.2fs  %.0f img/s", seconds, seen / seconds);
    log(text + line);
    history.push_back(row);

    ModelFile ck = current_model();
    ck.has_optimizer = true;
    int64_t steps = 0;
    step->optimizer_state(&ck.m, &ck.v, &steps);
    ck.state = {{"step", steps}, {"epoch", epoch + 1}, {"history", history}, {"best", best}};
    if (root) save_model_file(checkpoint_path, ck);
    if (o.early_stop > 0 && !best.empty() && epoch + 1 - best["epoch"].get<int>() >= o.early_stop) {
      log("early stop: " + o.select_by + " has not improved for " + std::to_string(o.early_stop) +
          " epochs (best " + best["value"].dump() + " at epoch " + best["epoch"].dump() + ")");
      break;
    }
  }
  if (root) save_model_file(model_path, current_model());
  const MemoryReport memory = step->memory();
  nlohmann::json summary = {{"device", o.device},
                            // The last epoch's breakdown: steady state, no warm-up.
                            {"profile", history.back().value("profile", nlohmann::json::object())},
                            {"memory",
                             {{"activation_bytes", memory.activation_bytes},
                              {"parameter_bytes", memory.parameter_bytes},
                              {"allocator_calls", memory.allocator_calls},
                              {"detail", memory.detail}}},
                            {"allocator", engine.to_json()},
                            {"backend", step->details()},
                            {"threads", threads},
                            {"processes", ranks},
                            {"input", {o.width, o.height}},
                            {"batch", o.batch},
                            {"epochs", o.epochs},
                            {"train_images", train_images.size()},
                            {"validation_images", val_images.size()},
                            {"train_examples", train_set.examples.size()},
                            {"history", history},
                            {"validation", last_eval},
                            {"best", best},
                            {"model", model_path}};
  if (root) write_file_atomically(metrics_path, summary.dump(2) + "\n");
  comm->barrier();  // every process ends with the files written
  return summary;
}

}  // namespace histocnn
