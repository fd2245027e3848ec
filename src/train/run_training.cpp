#include "train/run_training.h"

#include <unistd.h>

#include "data/csv_text.h"
#include "train/callbacks.h"
#include "train/run_setup.h"

namespace histocnn {
namespace {

void log_data(const RunContext& run, const TrainingData& data, bool shared) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1fs", data.seconds);
  run.log("data: " + std::to_string(data.train_images.size()) + " train images -> " +
          std::to_string(data.train_set.examples.size()) + " examples, " +
          std::to_string(data.val_images.size()) + " validation images -> " +
          std::to_string(data.val_set.examples.size()) + " examples (" + seconds +
          (shared ? ", shared by the ensemble's members)" : ")"));
  if (data.labels.from_class_folders()) {  // which folders the network tells apart
    std::vector<std::string> malignant;
    for (int k = 0; k < data.labels.count(); ++k)
      if (data.labels.malignant[size_t(k)]) malignant.push_back(data.labels.classes[size_t(k)]);
    run.log("classes: " + comma_list(data.labels.classes) +
            "; malignant: " + comma_list(malignant) + " (--malignant-classes chooses)");
  }
  for (const std::string& note : data.notes) run.log("note: " + note);
}

void log_model(const TrainOptions& o, const RunContext& run, const NetworkShape& shape) {
  run.log("model: " + std::to_string(shape.parameter_count()) + " parameters, input " +
          std::to_string(o.width) + "x" + std::to_string(o.height) + ", batch " +
          std::to_string(o.batch) + ", device " + o.device + ", " + std::to_string(run.threads) +
          " threads, " + std::to_string(shape.training_flops() / o.batch / 1e9).substr(0, 5) +
          " GFLOP per example per step");
}

// What this run is, for metrics.json (the trainer adds what it measured).
nlohmann::json run_facts(const TrainOptions& o, const RunContext& run, const TrainingData& data) {
  return {{"device", o.device},
          {"threads", run.threads},
          {"processes", run.comm->size()},
          {"input", {o.width, o.height}},
          {"batch", o.batch},
          {"epochs", o.epochs},
          {"train_images", data.train_images.size()},
          {"validation_images", data.val_images.size()},
          {"train_examples", data.train_set.examples.size()},
          {"model", run.paths.model}};
}

// Where the run's files are, as its last line.
std::string files_line(const TrainOptions& o) {
  std::string files = o.checkpoints ? "model.safetensors, checkpoint.safetensors, metrics.json"
                                    : "model.safetensors, metrics.json";
  if (o.select_by != "none") files += ", model.best.safetensors";
  return "files in " + o.output + ": " + files;
}

// The run's concerns, in the order their shared events need.
MetricsFile* add_callbacks(Trainer& trainer, const TrainOptions& o, const RunContext& run,
                           TrainingData& own, const TrainingData& data) {
  if (o.crops.fresh_each_epoch)
    trainer.add(std::make_unique<FreshCrops>(own.train_set, o.crops.seed));
  if (o.schedule.kind != "constant" || o.schedule.warmup_epochs > 0)
    trainer.add(std::make_unique<LearningRateSchedule>());
  if (o.progress && ::isatty(STDERR_FILENO)) trainer.add(std::make_unique<ProgressBar>());
  if (run.comm->size() > 1 && trainer.step().shape().has_batch_norm())
    trainer.add(std::make_unique<BatchNormSync>());
  trainer.add(std::make_unique<DivergenceGuard>());
  if (o.calibrate) trainer.add(std::make_unique<TemperatureScaling>(o.eval_tta));
  if (o.select_by != "none") trainer.add(std::make_unique<BestEpoch>(o.select_by));
  trainer.add(std::make_unique<EpochLog>());
  trainer.add(std::make_unique<Checkpointing>(o.checkpoints));
  if (o.early_stop > 0) trainer.add(std::make_unique<EarlyStopping>(o.early_stop));
  auto metrics = std::make_unique<MetricsFile>(run_facts(o, run, data), *run.engine);
  MetricsFile* summary = metrics.get();
  trainer.add(std::move(metrics));
  return summary;
}

}  // namespace

nlohmann::json run_training(const TrainOptions& o, const TrainingData* prepared) {
  const std::unique_ptr<RunContext> run = open_run(o);
  // Data: prepared here, or once for every member of an ensemble (fresh crops
  // redraw the set: then a member works on its own copy).
  TrainingData own;
  if (!prepared || o.crops.fresh_each_epoch)
    own = prepared ? *prepared : prepare_training_data(o, *run->comm, run->threads);
  const TrainingData& data = prepared && !o.crops.fresh_each_epoch ? *prepared : own;
  if (!o.export_examples.empty()) {
    if (run->comm->root()) export_examples(data.train_set, o.export_examples);
    run->log("wrote " + std::to_string(data.train_set.examples.size()) + " examples to " +
             o.export_examples);
    return {{"exported", o.export_examples}};
  }
  log_data(*run, data, prepared != nullptr);
  // Each process computes its slice of every global batch: at most this many rows.
  const int local_batch = (o.batch + run->comm->size() - 1) / run->comm->size();
  const auto step = compile_training_step(o, *run, data.train_set, local_batch);
  Normalization normalization = data.normalization;  // a resumed run takes the checkpoint's
  TrainState state = restore_or_initialise(o, *run, *step, &normalization);
  log_model(o, *run, step->shape());
  Trainer trainer(
      {&o, step.get(), &data.train_set, &data.val_set, run->comm, run->log, run->paths,
       model_metadata(o, normalization, data.crops, data.labels), run->threads, local_batch},
      std::move(state));
  const MetricsFile* metrics = add_callbacks(trainer, o, *run, own, data);
  if (trainer.state().start_epoch >= o.epochs)
    run->log("nothing to do: " + run->paths.checkpoint + " is already at epoch " +
             std::to_string(trainer.state().start_epoch) + " (--epochs " +
             std::to_string(o.epochs) + "; raise it to train on)");
  trainer.fit();
  run->comm->barrier();  // every process ends with the files written
  run->log(files_line(o));
  return metrics->summary();
}

}  // namespace histocnn
