// Batches prepared for the training step: augmentation and the uint8 HWC ->
// float NCHW conversion. With workers, they run on their own threads ahead of
// the consumer, while it trains on the previous batch. With 0 workers, next()
// prepares each batch itself on the calling thread's OpenMP team, one example
// per iteration of a static loop (see loader_workers_for). Batches come out in
// order and are identical whatever the number of workers or team threads.
// A worker that fails hands its exception to next(), which rethrows it: the
// run ends with the message instead of std::terminate. Batch buffers are
// recycled: next() takes the caller's previous batch back for a worker to
// refill, so a steady epoch allocates nothing.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace histocnn {

struct Batch {
  int count = 0;
  std::vector<float> images;  // batch x 3 x H x W (rows past count unused)
  std::vector<int32_t> labels;
  std::vector<int> example_ids;  // index into the ExampleSet
};

// Loader workers for a training step on `cores` cores. A CPU step's OpenMP
// team occupies every core with statically scheduled loops, so a loader
// thread beside it takes a core from one team thread and the whole team waits
// at the loop's end: 0 workers, the team prepares each batch between steps
// (its cost divided by the cores, no interference). A device step leaves the
// cores idle while it computes: cores - 1 workers prepare ahead of it.
// docs/results/cpu-loader.md measures both.
int loader_workers_for(bool step_on_cpu, int cores);

class BatchLoader {
 public:
  // `order`: the example indices of this epoch, in order. `seed` should vary
  // per epoch. depth: batches prepared ahead.
  BatchLoader(const ExampleSet& set, std::vector<int> order, int batch_size,
              const AugmentOptions& augment, uint64_t seed, int workers, int depth = 4,
              const Normalization& normalization = {});
  // Explicit batch boundaries: batch k is the next batch_sizes[k] examples of
  // `order` (sizes may differ, even be 0: a process's share of a short batch);
  // every batch's buffers hold `capacity` rows.
  BatchLoader(const ExampleSet& set, std::vector<int> order, const std::vector<int>& batch_sizes,
              int capacity, const AugmentOptions& augment, uint64_t seed, int workers,
              int depth = 4, const Normalization& normalization = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int batches() const { return batch_count_; }
  // Swaps the next batch into `out` (whose old buffers are reused); false after
  // the last one. Rethrows a worker's exception.
  bool next(Batch& out);
  // Seconds the consumer spent on data: waiting for the workers (the trainer
  // should not), or with 0 workers preparing the batches itself.
  double wait_seconds() const { return wait_seconds_; }
  // Batch buffers made so far (the rest were recycled).
  int buffers_created() const;

 private:
  void work(int worker);
  // on_team: the examples split over the caller's OpenMP team.
  void fill(int index, Batch& batch, bool on_team) const;

  const ExampleSet& set_;
  std::vector<int> order_;
  int batch_size_, batch_count_;
  std::vector<int> starts_;  // batch k is order_[starts_[k], starts_[k + 1])
  AugmentOptions augment_;
  Normalization normalization_;
  uint64_t seed_;
  int depth_;
  mutable std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::map<int, Batch> done_;
  std::vector<Batch> spare_;  // returned by next(), refilled by workers
  std::exception_ptr error_;  // the first worker failure
  int error_index_ = -1;
  int buffers_created_ = 0;
  int consumed_ = 0;
  bool stop_ = false;
  double wait_seconds_ = 0;
  std::vector<std::thread> threads_;
  int workers_;
};

}  // namespace histocnn
