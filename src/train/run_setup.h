// The phases of a training run before its first step, each one function:
// open the run (processes, log, settings, cores, the device and what lives on
// it, the output folder), compile the step for the data, and restore or
// initialise the weights. train/run_training.cpp strings them together.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "core/device.h"
#include "core/paths.h"
#include "core/run_lock.h"
#include "dist/communicator.h"
#include "memory/memory_engine.h"
#include "train/callback.h"
#include "train/checkpoint.h"
#include "train/train_options.h"
#include "train/trainer.h"
#include "train/training_data.h"

namespace histocnn {

// Rank 0 prints a run's log lines through options.log (stdout without one);
// the other processes' logger drops them.
std::function<void(const std::string&)> root_logger(const TrainOptions& options,
                                                    const Communicator& comm);

// What a run holds from start to end, in the order it is made: the
// processes, the log, the cores, the device (selected once, from --device and
// the local rank) and what lives on it (the NCCL reducer, the backend, the
// memory engine), and the output folder, locked by rank 0.
struct RunContext {
  std::unique_ptr<Communicator> single;  // when options.comm is null
  Communicator* comm = nullptr;
  std::function<void(const std::string&)> log;
  int threads = 1;
  Device device;
  // Sums gradients on the GPU (NCCL), for CUDA on several processes.
  std::function<void(float*, int64_t, StreamHandle)> device_reducer;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<MemoryEngine> engine;
  RunPaths paths;
  // Rank 0: the folder (removed again if this run made it and fails before
  // writing anything), then its lock (one writer per run folder; released
  // first: members are destroyed in reverse order).
  std::unique_ptr<OutputFolder> folder;
  std::unique_ptr<RunLock> lock;
};

// Validates the options, binds the cores, selects the device, makes the NCCL
// reducer, the backend and the memory engine, runs the quick CUDA self-test
// (before the pool reserves its share of the GPU), and prepares the output
// folder (rank 0). Throws naming the flag or file at fault, before any data
// work.
std::unique_ptr<RunContext> open_run(const TrainOptions& options);

// The step for `train_set`, each process computing at most `local_batch`
// rows of every global batch (checked: batch norm needs even shares and at
// least one full batch); logs its memory and the cuDNN algorithms.
std::unique_ptr<TrainingStep> compile_training_step(const TrainOptions& options, RunContext& run,
                                                    const ExampleSet& train_set, int local_batch);

// The weights to start from: the checkpoint's with --resume (with Adam's state
// and the loop's; its settings must match unless --force-resume, and its
// input normalisation replaces `normalization`), --init's, or Glorot's.
// Returns the loop's state (start epoch, history, best).
TrainState restore_or_initialise(const TrainOptions& options, const RunContext& run,
                                 TrainingStep& step, Normalization* normalization);

// What the run's model files record besides the weights: spec, input, crop,
// microns per network pixel, normalisation, stain target, label scheme, the
// settings (with the crops per class as resolved).
ModelFile model_metadata(const TrainOptions& options, const Normalization& normalization,
                         const CropOptions& crops, const LabelScheme& labels);

}  // namespace histocnn
