// The paper's study as one command: training time over image size x batch
// size, for each device (CPU with N threads; CUDA with each allocator) and
// engine (histocnn; PyTorch where installed), with warm-up, repetitions and
// medians. Each measurement runs in its own process (so --threads really
// binds it) and is appended atomically to <output>/results.jsonl as soon as
// it finishes; a killed study resumes where it stopped.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "study/results_file.h"

namespace histocnn {

struct StudyOptions {
  std::string data;  // GlaS folder; empty = synthetic data in <output>/synthetic
  std::vector<int> sizes = {32, 64, 128, 180, 200};
  std::vector<int> batches = {10, 20, 50, 100, 150};
  std::vector<int> threads = {0};  // CPU core counts (0 = all)
  std::vector<std::string> devices = {"cpu"};
  std::vector<std::string> allocators = {"direct", "pool", "async", "plan"};  // CUDA only
  std::vector<std::string> engines = {"histocnn", "pytorch"};
  int epochs = 2;  // timed epochs per measurement (median reported)
  int warmup = 1;  // untimed epochs first
  // Interleaved rounds: every measurement of one (size, batch) — each engine,
  // thread count and allocator — runs once per round, round after round, so
  // a neighbour's load falls on all of them alike; a row reports the median
  // over its rounds (each round: warmup + epochs epochs in a new process).
  int rounds = 1;
  // Before the first CPU measurement at each thread count, what those cores
  // can do (`histocnn ceilings`: sgemm GFLOP/s, memory triad GB/s), recorded
  // in each CPU row; the report reads the speed-up over 1 thread against
  // the sgemm's own.
  bool ceilings = false;
  int crop = 256, benign = 941, malignant = 910;
  uint64_t seed = 1;
  std::string output;
  std::string binary;          // the histocnn executable
  std::string pytorch_script;  // bench/pytorch_train.py
  std::string python = "/usr/bin/python3";
};

struct StudyPoint {
  std::string engine, device, allocator;  // allocator: "" on CPU
  int threads, size, batch;
  std::string key() const;
};

std::vector<StudyPoint> study_grid(const StudyOptions& options);
// Runs every point not yet in results.jsonl. Returns the number run now.
int run_study(const StudyOptions& options);
// The median of the values (0 for none): what a point of several rounds or
// epochs reports.
double median(std::vector<double> values);
// Machine description recorded with every row.
nlohmann::json describe_machine();
// The PyTorch engine's script for the histocnn executable at `binary`:
// bench/pytorch_train.py beside it (a relocatable package: libexec/ and
// bench/ side by side; a build folder inside the source tree: build/ and
// bench/), else the one in `source_dir` where histocnn was built.
std::string default_pytorch_script(const std::string& binary, const std::string& source_dir);

}  // namespace histocnn
