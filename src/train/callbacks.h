// The concerns of a training run, each one Callback (train/callback.h) in
// its own file under train/callbacks/, added by run_training in this order
// (which matters where two share an event: batch norm is synchronised before
// the weights are checked, the best model is kept before the epoch line is
// printed, the checkpoint is written before early stopping ends the run).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "data/dataset.h"
#include "memory/memory_engine.h"
#include "train/callback.h"
#include "train/schedule.h"

namespace histocnn {

// New crop positions every epoch after the first, from the images kept at
// the crop's scale (`set`: the trainer's training set), seeded by the epoch
// so a resumed run draws the same ones. on_epoch_start.
class FreshCrops final : public Callback {
 public:
  FreshCrops(ExampleSet& set, uint64_t crop_seed) : set_(set), crop_seed_(crop_seed) {}
  void on_epoch_start(Trainer& t) override;

 private:
  ExampleSet& set_;
  uint64_t crop_seed_;
};

// The step's learning rate before each batch, from the schedule as a function
// of the global step (train/schedule.h). on_batch_start.
class LearningRateSchedule final : public Callback {
 public:
  void on_batch_start(Trainer& t) override;
};

// A progress bar on stderr (only when it is a terminal): batches, running
// loss, time left. on_batch_end; cleared on_train_epoch_end.
class ProgressBar final : public Callback {
 public:
  void on_batch_end(Trainer& t) override;
  void on_train_epoch_end(Trainer& t) override;
};

// Data parallelism with batch norm: each process normalised its own share of
// every batch (PyTorch's BatchNorm under DDP); rank 0's running statistics
// become everyone's after each epoch, as DDP's broadcast_buffers does, so all
// processes predict alike. on_train_epoch_end.
class BatchNormSync final : public Callback {
 public:
  void on_train_epoch_end(Trainer& t) override;
};

// Ends the run with DivergenceError when the loss (on_results) or, after the
// epoch's last update, the weights (on_train_epoch_end, before validation
// predicts with them) are not finite; the message names the last good
// checkpoint and suggests a lower --lr.
class DivergenceGuard final : public Callback {
 public:
  void on_results(Trainer& t) override;
  void on_train_epoch_end(Trainer& t) override;
};

// Calibration: after each validation, the temperature that minimises the
// negative log-likelihood of the validation crops (train/temperature.h) is
// fitted on rank 0 and kept in TrainState::calibration, so the model,
// best-epoch and checkpoint files written after it carry it (their
// histocnn.trained "calibration"); the epoch's row and line get T. Added
// before BestEpoch and Checkpointing. on_validation_end (collective).
//
// `tta` (the recipe's --eval-tta): eval, predict and slide will average
// every crop over its dihedral transforms, which softens it, so a
// temperature fitted on single views is too soft for what they serve. The
// fit then runs on the validation crops predicted as they will be, with TTA,
// in every epoch whose calibration a model file keeps (the last one, and
// each one under --select-by, where it costs every epoch 8 more validation
// passes); the other epochs fit on the plain validation (no extra pass).
// The calibration records which ("tta").
class TemperatureScaling final : public Callback {
 public:
  explicit TemperatureScaling(bool tta = false) : tta_(tta) {}
  void on_validation_end(Trainer& t) override;

 private:
  bool tta_;
};

// Model selection: the epoch with the best validation `metric` (image_auc,
// image_accuracy, image_balanced_accuracy, crop_accuracy; higher is better,
// the first of equals kept) is written to model.best.safetensors and marked
// "*best*" on its line. Rank 0's value is broadcast: every process keeps the
// same best epoch. on_validation_end (collective).
class BestEpoch final : public Callback {
 public:
  explicit BestEpoch(std::string metric) : metric_(std::move(metric)) {}
  void on_validation_end(Trainer& t) override;
  // The metric's value in a report.
  static double value_of(const std::string& metric, const EvalReport& report);

 private:
  std::string metric_;
};

// The epoch's line (loss, accuracies, what callbacks added, time and
// throughput) through the run's log. on_epoch_end.
class EpochLog final : public Callback {
 public:
  void on_epoch_end(Trainer& t) override;
};

// checkpoint.safetensors after every epoch (unless `every_epoch` is false:
// --no-checkpoint) and model.safetensors at the end (rank 0 writes; each
// file atomically). on_epoch_end, on_fit_end.
class Checkpointing final : public Callback {
 public:
  explicit Checkpointing(bool every_epoch = true) : every_epoch_(every_epoch) {}
  void on_epoch_end(Trainer& t) override;
  void on_fit_end(Trainer& t) override;

 private:
  bool every_epoch_;
};

// Ends the run once the best epoch (BestEpoch) is `patience` epochs old.
// on_epoch_end.
class EarlyStopping final : public Callback {
 public:
  explicit EarlyStopping(int patience) : patience_(patience) {}
  void on_epoch_end(Trainer& t) override;

 private:
  int patience_;
};

// metrics.json at the end of the run (rank 0): `facts` (what the run was:
// device, threads, processes, input, data sizes, model path) with the
// history, the last validation, the best epoch, the step's memory and profile
// and the memory engine's statistics. on_fit_end; summary() returns it.
class MetricsFile final : public Callback {
 public:
  MetricsFile(nlohmann::json facts, const MemoryEngine& engine)
      : summary_(std::move(facts)), engine_(engine) {}
  void on_fit_end(Trainer& t) override;
  const nlohmann::json& summary() const { return summary_; }

 private:
  nlohmann::json summary_;
  const MemoryEngine& engine_;
};

}  // namespace histocnn
