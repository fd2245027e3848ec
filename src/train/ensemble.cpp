#include "train/ensemble.h"

#include <cstdio>
#include <filesystem>
#include <functional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/stopwatch.h"
#include "core/threads.h"
#include "data/loader.h"
#include "train/evaluate.h"
#include "train/run_checks.h"
#include "train/run_setup.h"

namespace histocnn {
namespace fs = std::filesystem;

std::vector<ModelFile> load_ensemble(const std::vector<std::string>& paths) {
  require(!paths.empty(), "--model: no model given");
  std::vector<ModelFile> models;
  for (const auto& path : paths) {
    for (ModelFile& m : load_models(path)) {
      if (!models.empty()) {
        const std::string differs = input_difference(models.front(), m);
        require(differs.empty(), path + ": reads images differently from " + paths.front() + " (" +
                                     differs +
                                     "); models averaged together must share network, input, "
                                     "crop and stain normalisation");
      }
      models.push_back(std::move(m));
    }
  }
  return models;
}

PredictionSteps compile_for_prediction(const Device& device, const std::vector<ModelFile>& models,
                                       int batch) {
  require(!models.empty(), "no model to predict with");
  PredictionSteps steps;
  steps.backend = make_backend(device);
  for (const ModelFile& m : models) {
    require(m.spec.text() == models.front().spec.text() && m.width == models.front().width &&
                m.height == models.front().height,
            "an ensemble's members must share network and input size");
    auto step = steps.backend->compile(m.spec, infer_shapes(m.spec, batch, m.height, m.width),
                                       StepOptions{});
    step->set_parameters(m.params);
    step->set_buffers(m.buffers);
    steps.members.push_back(step.get());
    steps.owned.push_back(std::move(step));
  }
  return steps;
}

namespace {

using Logger = std::function<void(const std::string&)>;

// The members' runs: their metrics rows and where their models are.
struct TrainedMembers {
  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::string> models, bests;
};

// Member k (1-based) with seed seed + k - 1 into <output>/member<k>/, all on
// the one prepared data.
TrainedMembers train_members(const TrainOptions& o, Communicator* comm, const TrainingData& data,
                             const Logger& log) {
  TrainedMembers trained;
  for (int k = 1; k <= o.ensemble; ++k) {
    TrainOptions member = o;
    member.seed = o.seed + uint64_t(k - 1);
    member.output = (fs::path(o.output) / ("member" + std::to_string(k))).string();
    member.comm = comm;
    log("ensemble member " + std::to_string(k) + "/" + std::to_string(o.ensemble) + " (seed " +
        std::to_string(member.seed) + ") -> " + member.output);
    const Clock::time_point start = Clock::now();
    const nlohmann::json summary = run_training(member, &data);
    trained.rows.push_back({{"member", k},
                            {"seed", member.seed},
                            {"output", member.output},
                            {"validation", summary.value("validation", nlohmann::json())},
                            {"best", summary.value("best", nlohmann::json::object())},
                            {"seconds", seconds_since(start)}});
    trained.models.push_back(summary.at("model").get<std::string>());
    trained.bests.push_back(run_paths(member.output).best);
  }
  return trained;
}

// The models of `paths` as one ensemble file `out`.
std::vector<ModelFile> combine(const std::vector<std::string>& paths, const std::string& out) {
  std::vector<ModelFile> models;
  for (const auto& p : paths) models.push_back(load_model_file(p));
  save_ensemble_file(out, models);
  return models;
}

// The validation images through an ensemble, as eval will read its file.
nlohmann::json score(const std::vector<ModelFile>& models, const Device& device, int batch,
                     int threads, const ExampleSet& validation, const std::string& name,
                     const Logger& log) {
  PredictionSteps steps = compile_for_prediction(device, models, batch);
  EvalOptions options;
  options.labels = models.front().labels;
  options.loader_workers = loader_workers_for(!device.is_cuda(), threads);
  const EvalReport report =
      evaluate(steps.members, validation, models.front().normalization, nullptr, options);
  char line[240];
  std::snprintf(line, sizeof line,
                "ensemble of %d (%s): val acc %.3f (image %.3f, patient %.3f), image AUC %.3f",
                int(models.size()), name.c_str(), report.per_crop.accuracy,
                report.per_image.accuracy, report.per_patient.accuracy, report.per_image.auc);
  log(line);
  return report.to_json();
}

}  // namespace

nlohmann::json train_ensemble(const TrainOptions& o) {
  require(o.ensemble >= 2, "train_ensemble: needs at least two members");
  require(o.export_examples.empty(),
          "--export-examples: writes one set of examples; drop --ensemble");
  validate_training_options(o);
  require(!o.output.empty(), "--output: an output folder is required");
  std::unique_ptr<Communicator> single;
  Communicator* comm = o.comm ? o.comm : (single = make_single_process_communicator()).get();
  const auto log = root_logger(o, *comm);
  if (comm->root()) make_directories(o.output);
  const int threads = bound_cores(o.threads);
  const TrainingData data = prepare_training_data(o, *comm, threads);
  const TrainedMembers members = train_members(o, comm, data, log);
  // Rank 0 alone combines the members' files and scores the ensemble: the
  // other processes (on other machines, perhaps without its file system)
  // have nothing left to do.
  const RunPaths paths = run_paths(o.output);
  const bool selects = o.select_by != "none", scored = !data.val_set.examples.empty();
  nlohmann::json summary = {{"ensemble", o.ensemble},
                            {"members", members.rows},
                            {"validation", nullptr},
                            {"train_images", data.train_images.size()},
                            {"validation_images", data.val_images.size()},
                            {"train_examples", data.train_set.examples.size()},
                            {"data_seconds", data.seconds},
                            {"model", paths.model}};
  if (selects) summary["best_model"] = paths.best, summary["best_validation"] = nullptr;
  const Device device = select_device(o.device, comm->local_rank());  // collective: every rank
  if (comm->root()) {
    const auto last = combine(members.models, paths.model);
    if (scored)
      summary["validation"] =
          score(last, device, o.batch, threads, data.val_set, "model.safetensors", log);
    const auto best = selects ? combine(members.bests, paths.best) : std::vector<ModelFile>{};
    if (selects && scored)
      summary["best_validation"] =
          score(best, device, o.batch, threads, data.val_set, "model.best.safetensors", log);
    write_file_atomically(paths.metrics, summary.dump(2) + "\n");
  }
  comm->barrier();
  log("files in " + o.output + ": model.safetensors (the ensemble), metrics.json" +
      (selects ? ", model.best.safetensors" : "") + ", member1/ .. member" +
      std::to_string(o.ensemble) + "/ (each a training run)");
  return summary;
}

}  // namespace histocnn
