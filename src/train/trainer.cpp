#include "train/trainer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "data/loader.h"
#include "train/run_checks.h"
#include "train/step_batches.h"

namespace histocnn {

RunPaths run_paths(const std::string& output) {
  const std::filesystem::path folder(output);
  return {(folder / "checkpoint.safetensors").string(), (folder / "model.safetensors").string(),
          (folder / "model.best.safetensors").string(), (folder / "metrics.json").string()};
}

Trainer::Trainer(TrainerParts parts, TrainState state)
    : parts_(std::move(parts)), state_(std::move(state)), order_rng_(options().seed ^ 0x0DE5u) {
  // The order of an uninterrupted run: one draw per epoch already run.
  for (int e = 0; e < state_.start_epoch; ++e) order_rng_.next();
  // Batches made where the step reads them without a copy (CUDA: page-locked),
  // as bytes where the step expands them itself (CUDA).
  batch_buffers_.use_source(parts_.step->input_buffers(),
                            image_form_for(*parts_.step, options().augment));
}

void Trainer::add(std::unique_ptr<Callback> callback) {
  callbacks_.push_back(std::move(callback));
}

void Trainer::fit() {
  fire(&Callback::on_fit_start);
  for (state_.epoch = state_.start_epoch; state_.epoch < options().epochs; ++state_.epoch) {
    run_epoch();
    if (state_.stop) break;
  }
  fire(&Callback::on_fit_end);
}

ModelFile Trainer::model() const {
  ModelFile file = parts_.metadata;
  if (!state_.calibration.is_null()) file.trained["calibration"] = state_.calibration;
  file.params = parts_.step->parameters();
  file.buffers = parts_.step->buffers();
  return file;
}

ModelFile Trainer::checkpoint() const {
  ModelFile file = model();
  file.has_optimizer = true;
  int64_t steps = 0;
  parts_.step->optimizer_state(&file.m, &file.v, &steps);
  file.state = {{"step", steps},
                {"epoch", state_.epoch + 1},
                {"history", state_.history},
                {"best", state_.best}};
  return file;
}

void Trainer::run_epoch() {
  fire(&Callback::on_epoch_start);
  Rng epoch_rng(order_rng_.next());
  const EpochPlan plan = plan_epoch(epoch_rng);
  train_batches(plan, epoch_rng.next());
  fire(&Callback::on_train_epoch_end);
  validate();
  state_.history.push_back(state_.row);
  fire(&Callback::on_epoch_end);
}

Trainer::EpochPlan Trainer::plan_epoch(Rng& epoch_rng) const {
  const int batch = options().batch, ranks = parts_.comm->size();
  const bool batch_norm = parts_.step->shape().has_batch_norm();
  std::vector<int> order(parts_.train_set->examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), epoch_rng);
  EpochPlan plan;
  for (size_t begin = 0; begin < order.size(); begin += size_t(batch)) {
    const int rows = int(std::min(order.size() - begin, size_t(batch)));
    // Batch norm normalises by the batch's statistics: a short last batch is
    // dropped (other examples each epoch: the order is reshuffled).
    if (batch_norm && rows < batch) break;
    const RowRange r = rows_of_rank(rows, parts_.comm->rank(), ranks);
    plan.mine.insert(plan.mine.end(), order.begin() + long(begin) + r.begin,
                     order.begin() + long(begin) + r.end);
    plan.sizes.push_back(r.count());
    plan.slices.push_back({rows, r.begin});
  }
  return plan;
}

void Trainer::train_batches(const EpochPlan& plan, uint64_t loader_seed) {
  BatchLoader loader(*parts_.train_set, plan.mine, plan.sizes, parts_.local_batch,
                     options().augment, loader_seed,
                     loader_workers_for(options().device == "cpu", parts_.threads), 4,
                     parts_.metadata.normalization, &batch_buffers_);
  TrainingStep& step = *parts_.step;
  const StepProfile before = step.profile();
  state_.epoch_start = Clock::now();
  state_.batch = 0;
  state_.batches = loader.batches();
  state_.seen = state_.counted = state_.correct = 0;
  state_.loss_sum = 0;
  // Device backends accumulate loss and correct count on the device and hand
  // them over every kResultsEvery steps (no host synchronisation per step).
  constexpr int kResultsEvery = 20;
  const bool sliced = parts_.comm->size() > 1;
  for (Batch b; loader.next(b);) {
    fire(&Callback::on_batch_start);
    const StepResult r =
        train_on(step, b, sliced ? plan.slices[size_t(state_.batch)] : BatchSlice{});
    state_.seen += b.count;
    ++state_.batch;
    if (!step.deferred_results())
      absorb(r, b.count);
    else if (state_.batch % kResultsEvery == 0)
      absorb(step.take_results(), state_.seen - state_.counted);
    fire(&Callback::on_batch_end);
  }
  if (step.deferred_results() && state_.counted < state_.seen)
    absorb(step.take_results(), state_.seen - state_.counted);
  reduce_epoch_totals();
  state_.seconds = seconds_since(state_.epoch_start);
  begin_row(before, loader.wait_seconds());
}

void Trainer::absorb(const StepResult& results, int rows) {
  state_.results = results;
  state_.loss_sum += results.loss_sum;
  state_.correct += results.correct;
  state_.counted += rows;
  fire(&Callback::on_results);
}

// Data parallelism: the epoch's sums over every process.
void Trainer::reduce_epoch_totals() {
  if (parts_.comm->size() == 1) return;
  double sums[3] = {state_.loss_sum, double(state_.correct), double(state_.seen)};
  parts_.comm->allreduce_sum(sums, 3);
  state_.loss_sum = sums[0];
  state_.correct = int(sums[1]);
  state_.seen = int(sums[2]);
}

// The epoch's metrics row and the start of its log line.
void Trainer::begin_row(const StepProfile& before, double data_wait_seconds) {
  const TrainState& s = state_;
  state_.row = {{"epoch", s.epoch + 1},
                {"loss", s.loss_sum / s.seen},
                {"train_accuracy", double(s.correct) / s.seen},
                {"seconds", s.seconds},
                {"images_per_second", s.seen / s.seconds},
                {"data_wait_seconds", data_wait_seconds}};
  const StepProfile p = parts_.step->profile();
  nlohmann::json profile = {{"steps", p.steps - before.steps},
                            {"forward_seconds", p.forward - before.forward},
                            {"backward_seconds", p.backward - before.backward},
                            {"update_seconds", p.update - before.update},
                            {"allocator_seconds", p.allocator - before.allocator},
                            {"data_wait_seconds", data_wait_seconds}};
  if (!p.layers.empty()) {
    nlohmann::json layers = nlohmann::json::object();
    for (const auto& [name, total] : p.layers) {
      auto earlier = before.layers.find(name);
      layers[name] = total - (earlier == before.layers.end() ? 0.0 : earlier->second);
    }
    profile["layer_seconds"] = layers;
  }
  state_.row["profile"] = profile;
  char line[256];
  std::snprintf(line, sizeof line, "epoch %d/%d  loss %.4f  train acc %.3f", s.epoch + 1,
                options().epochs, s.loss_sum / s.seen, double(s.correct) / s.seen);
  state_.line = line;
}

EvalReport Trainer::evaluate_validation(bool tta) {
  EvalOptions eval_options;
  eval_options.labels = parts_.metadata.labels;
  eval_options.tta = tta;
  eval_options.loader_workers = loader_workers_for(options().device == "cpu", parts_.threads);
  const bool same_form = prediction_form({parts_.step}) == batch_buffers_.form();
  eval_options.batch_buffers = same_form ? &batch_buffers_ : &validation_buffers_;
  try {
    return evaluate(*parts_.step, *parts_.val_set, parts_.metadata.normalization, parts_.comm,
                    eval_options);
  } catch (const NonFiniteScores& e) {
    throw DivergenceError("training diverged after epoch " + std::to_string(state_.epoch + 1) +
                          ": " + e.what() + kept_checkpoint(parts_.paths.checkpoint) +
                          " (try a lower --lr)");
  }
}

void Trainer::validate() {
  state_.validation.reset();
  if (parts_.val_set->examples.empty()) return;
  state_.validation = evaluate_validation(false);
  const EvalReport& report = *state_.validation;
  state_.last_validation = report.to_json();
  state_.row["validation"] = state_.last_validation;
  char line[128];
  std::snprintf(line, sizeof line, "  val acc %.3f (image %.3f, patient %.3f)",
                report.per_crop.accuracy, report.per_image.accuracy, report.per_patient.accuracy);
  state_.line += line;
  if (report.class_names.size() > 2) {
    std::snprintf(line, sizeof line, "  %zu-class image acc %.3f kappa %.3f",
                  report.class_names.size(), report.class_per_image.accuracy,
                  report.class_per_image.quadratic_kappa);
    state_.line += line;
  }
  fire(&Callback::on_validation_end);
}

}  // namespace histocnn
