// The training loop: a Trainer owns the compiled step, the examples and the
// loop's state, and runs fit → epoch → batch, firing the events of
// train/callback.h. What the loop does itself is only what every run needs:
// each epoch's order (shuffled, this process's slice of every global batch),
// the batches through the step, the epoch's totals (summed over processes)
// and its metrics row, and validation. Everything else is a callback.
//
// Adding a concern (say, a checkpoint every N steps): derive from Callback,
// override the events it needs (on_batch_end: `if (t.state().batch % n == 0)
// save_model_file(..., t.checkpoint())`), and add it to the trainer where the
// run is assembled (train/run_training.cpp).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/communicator.h"
#include "train/callback.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/train_options.h"

namespace histocnn {

// Where a run keeps its files (all under --output).
struct RunPaths {
  std::string checkpoint, model, best, metrics;
};
RunPaths run_paths(const std::string& output);

// What a Trainer runs with; everything is owned elsewhere and outlives it.
struct TrainerParts {
  const TrainOptions* options = nullptr;
  TrainingStep* step = nullptr;
  const ExampleSet* train_set = nullptr;  // may change between epochs (fresh crops)
  const ExampleSet* val_set = nullptr;    // empty: no validation
  Communicator* comm = nullptr;
  std::function<void(const std::string&)> log;  // rank 0's lines (the others' drop them)
  RunPaths paths;
  ModelFile metadata;   // what the run's model files record besides the weights
  int threads = 1;      // compute cores (the loader's workers: loader_workers_for)
  int local_batch = 0;  // rows of a global batch this process computes, at most
};

class Trainer {
 public:
  // `state`: fresh, or restored from a checkpoint (start_epoch, history, best).
  Trainer(TrainerParts parts, TrainState state);
  void add(std::unique_ptr<Callback> callback);
  // Epochs start_epoch .. options.epochs - 1, or until a callback sets stop.
  void fit();

  TrainState& state() { return state_; }
  const TrainOptions& options() const { return *parts_.options; }
  TrainingStep& step() { return *parts_.step; }
  Communicator& comm() { return *parts_.comm; }
  const RunPaths& paths() const { return parts_.paths; }
  void log(const std::string& line) const { parts_.log(line); }
  // The current weights (and batch-norm statistics) with the run's metadata.
  ModelFile model() const;
  // The validation set through the step as validation predicts it, or with
  // every crop averaged over its dihedral transforms (`tta`). Collective: rank
  // 0 gets the report, the others an empty one. A non-finite prediction
  // throws DivergenceError naming the epoch.
  EvalReport evaluate_validation(bool tta);
  // The model plus Adam's state and the loop's (step, epoch, history, best):
  // what `train --resume` continues from. Call at an epoch's end.
  ModelFile checkpoint() const;

 private:
  struct EpochPlan {
    std::vector<int> mine, sizes;    // this process's examples and batch sizes
    std::vector<BatchSlice> slices;  // where its rows sit in each global batch
  };
  void run_epoch();
  EpochPlan plan_epoch(Rng& epoch_rng) const;
  void train_batches(const EpochPlan& plan, uint64_t loader_seed);
  void absorb(const StepResult& results, int rows);
  void reduce_epoch_totals();
  void begin_row(const StepProfile& before, double data_wait_seconds);
  void validate();
  template <typename Event>
  void fire(Event event) {
    for (auto& callback : callbacks_) ((*callback).*event)(*this);
  }

  TrainerParts parts_;
  TrainState state_;
  Rng order_rng_;
  BatchPool batch_buffers_;  // the loader's buffers, kept from epoch to epoch
  // Validation's, where its form differs from training's (HED jitter trains
  // on floats, a CUDA step predicts from bytes); otherwise it shares the above.
  BatchPool validation_buffers_;
  std::vector<std::unique_ptr<Callback>> callbacks_;
};

}  // namespace histocnn
