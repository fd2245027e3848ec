#include "train/ensemble.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/threads.h"
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

nlohmann::json train_ensemble(const TrainOptions& o) {
  require(o.ensemble >= 2, "train_ensemble: needs at least two members");
  require(o.export_examples.empty(),
          "--export-examples: writes one set of examples; drop --ensemble");
  validate_training_options(o);
  require(!o.output.empty(), "--output: an output folder is required");
  std::unique_ptr<Communicator> single;
  Communicator* comm = o.comm ? o.comm : (single = make_single_process_communicator()).get();
  const bool root = comm->root();
  const auto log = root_logger(o, *comm);
  if (root) make_directories(o.output);
  const int threads = bound_cores(o.threads);
  const TrainingData data = prepare_training_data(o, *comm, threads);

  nlohmann::json members = nlohmann::json::array();
  std::vector<std::string> model_paths, best_paths;
  for (int k = 1; k <= o.ensemble; ++k) {
    TrainOptions member = o;
    member.seed = o.seed + uint64_t(k - 1);
    member.output = (fs::path(o.output) / ("member" + std::to_string(k))).string();
    member.comm = comm;
    log("ensemble member " + std::to_string(k) + "/" + std::to_string(o.ensemble) + " (seed " +
        std::to_string(member.seed) + ") -> " + member.output);
    const auto start = std::chrono::steady_clock::now();
    const nlohmann::json summary = run_training(member, &data);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    members.push_back({{"member", k},
                       {"seed", member.seed},
                       {"output", member.output},
                       {"validation", summary.value("validation", nlohmann::json())},
                       {"best", summary.value("best", nlohmann::json::object())},
                       {"seconds", seconds}});
    model_paths.push_back(summary.at("model").get<std::string>());
    best_paths.push_back((fs::path(member.output) / "model.best.safetensors").string());
  }

  // Rank 0 alone combines the members' files and scores the ensemble: the
  // other processes (on other machines, perhaps without its file system)
  // have nothing left to do.
  const std::string model_path = (fs::path(o.output) / "model.safetensors").string();
  const std::string best_path = (fs::path(o.output) / "model.best.safetensors").string();
  auto combine = [&](const std::vector<std::string>& paths, const std::string& out) {
    std::vector<ModelFile> models;
    for (const auto& p : paths) models.push_back(load_model_file(p));
    save_ensemble_file(out, models);
    return models;
  };
  // The validation images through an ensemble file, as eval will read it.
  auto score = [&](const std::vector<ModelFile>& models, const std::string& name) {
    PredictionSteps steps = compile_for_prediction(select_device(o.device), models, o.batch);
    const EvalReport report =
        evaluate(steps.members, data.val_set, models.front().normalization, nullptr, EvalOptions{});
    char line[240];
    std::snprintf(line, sizeof line,
                  "ensemble of %d (%s): val acc %.3f (image %.3f, patient %.3f), image AUC %.3f",
                  o.ensemble, name.c_str(), report.per_crop.accuracy, report.per_image.accuracy,
                  report.per_patient.accuracy, report.per_image.auc);
    log(line);
    return report.to_json();
  };
  nlohmann::json validation, best_validation;
  if (root) {
    const std::vector<ModelFile> last = combine(model_paths, model_path);
    const bool scored = !data.val_set.examples.empty();
    if (scored) validation = score(last, "model.safetensors");
    if (o.select_by != "none") {
      const std::vector<ModelFile> best = combine(best_paths, best_path);
      if (scored) best_validation = score(best, "model.best.safetensors");
    }
  }
  nlohmann::json summary = {{"ensemble", o.ensemble},
                            {"members", members},
                            {"validation", validation},
                            {"train_images", data.train_images.size()},
                            {"validation_images", data.val_images.size()},
                            {"train_examples", data.train_set.examples.size()},
                            {"data_seconds", data.seconds},
                            {"model", model_path}};
  if (o.select_by != "none") {
    summary["best_model"] = best_path;
    summary["best_validation"] = best_validation;
  }
  if (root)
    write_file_atomically((fs::path(o.output) / "metrics.json").string(), summary.dump(2) + "\n");
  comm->barrier();
  return summary;
}

}  // namespace histocnn
