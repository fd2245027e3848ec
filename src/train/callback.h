// The training loop's events and the interface of what listens to them, in
// the manner of Keras callbacks and fastai's Learner events. The Trainer
// (train/trainer.h) runs the loop; every other concern of a run — the
// learning-rate schedule, the divergence check, the progress bar, batch-norm
// synchronisation, best-epoch selection, the epoch line, checkpoints, early
// stopping, metrics.json — is one Callback (train/callbacks.h).
//
//   fit ─ on_fit_start
//         for each epoch ─ on_epoch_start
//                          for each batch ─ on_batch_start → step → on_batch_end
//                                           on_results (loss sums arrived)
//                          on_train_epoch_end   totals over all processes, row begun
//                          [validation] → on_validation_end
//                          on_epoch_end         row in the history; stop if state.stop
//         on_fit_end
//
// on_results fires when the step's loss and correct count arrive: after every
// step on the CPU, every 20 steps and at the epoch's end on a device (which
// accumulates them on the GPU without a host synchronisation per step).
// Callbacks run in the order they were added, and may change the state (and
// so what later callbacks see); an exception from one ends the run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "backends/backend.h"
#include "core/stopwatch.h"
#include "train/evaluate.h"

namespace histocnn {

class Trainer;

// What the loop knows of itself, shared with the callbacks.
struct TrainState {
  int epoch = 0;        // the epoch running (0-based)
  int start_epoch = 0;  // the first this process runs (> 0 when resumed)
  // Within the epoch: batches done (the one about to run at on_batch_start),
  // and how many there are.
  int batch = 0, batches = 0;
  Clock::time_point epoch_start;
  // The epoch's totals: rows trained, rows whose results arrived, and their
  // loss sum and correct count (over every process after on_train_epoch_end).
  int seen = 0, counted = 0, correct = 0;
  double loss_sum = 0;
  StepResult results;                    // the latest arrival (on_results)
  double seconds = 0;                    // the epoch's training time (on_train_epoch_end)
  nlohmann::json row;                    // the epoch's metrics.json row
  std::string line;                      // the epoch's log line, as callbacks extend it
  std::optional<EvalReport> validation;  // this epoch's (on_validation_end; rank 0)
  nlohmann::json last_validation;        // the latest validation's JSON (null before one)
  nlohmann::json history = nlohmann::json::array();  // one row per epoch, all epochs
  nlohmann::json best = nlohmann::json::object();    // {"metric","value","epoch"} once kept
  // The latest temperature fit (TemperatureFit::to_json), null before one;
  // Trainer::model() records it in the files' histocnn.trained.
  nlohmann::json calibration;
  bool stop = false;  // set by a callback: the loop ends after this epoch
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_fit_start(Trainer&) {}
  virtual void on_epoch_start(Trainer&) {}
  virtual void on_batch_start(Trainer&) {}
  virtual void on_batch_end(Trainer&) {}
  virtual void on_results(Trainer&) {}
  virtual void on_train_epoch_end(Trainer&) {}
  virtual void on_validation_end(Trainer&) {}
  virtual void on_epoch_end(Trainer&) {}
  virtual void on_fit_end(Trainer&) {}
};

}  // namespace histocnn
