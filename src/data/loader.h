// Batches prepared for the training step: augmentation and the uint8 HWC ->
// float NCHW conversion. With workers, they run on their own threads ahead of
// the consumer, while it trains on the previous batch: the workers share the
// batches of the window (the next `depth` ones), each claiming a chunk of
// examples of the earliest batch that has some left, so all of them work
// however few batches the window holds. With 0 workers, next()
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

#include "core/byte_images.h"
#include "core/host_buffers.h"
#include "data/augment.h"
#include "data/dataset.h"

namespace histocnn {

// How a loader hands over a batch's images: floats, what every step takes,
// or bytes with their lookup tables (core/byte_images.h), what a device step
// takes instead (TrainingStep::takes_byte_images): the conversion to floats
// then happens on the device, and a quarter of the bytes cross to it.
enum class ImageForm { kFloats, kBytes };

struct Batch {
  int count = 0;
  HostFloats images;  // kFloats: batch x 3 x H x W (rows past count unused)
  HostBytes pixels;   // kBytes: batch x H x W x 3, each example flipped/rotated
  HostFloats tables;  // kBytes: batch x 3 x 256, each example's byte -> value
  std::vector<int32_t> labels;
  std::vector<int> example_ids;  // index into the ExampleSet
  bool as_bytes() const { return !pixels.empty(); }
  ByteImages byte_images() const { return {pixels.data(), tables.data()}; }
  bool holds_buffers() const { return !images.empty() || !pixels.empty(); }
};

// Loader workers for a training step on `cores` cores. A CPU step's OpenMP
// team occupies every core with statically scheduled loops, so a loader
// thread beside it takes a core from one team thread and the whole team waits
// at the loop's end: 0 workers, the team prepares each batch between steps
// (its cost divided by the cores, no interference). A device step leaves the
// cores idle while it computes: cores - 1 workers prepare ahead of it.
// docs/results/cpu-loader.md measures both.
int loader_workers_for(bool step_on_cpu, int cores);

// Batch buffers kept from one loader to the next (from one epoch to the
// next): a fresh buffer costs its page faults and zeroing — at 200 px, batch
// 150, 72 MB each, most of the loader's time per epoch on the 2-core VM
// (docs/results/cpu-loader.md, 2026-12-04) — and a kept one nothing. Used by
// one loader at a time: it takes the buffers when made and gives them all
// back when destroyed. Its images come from `source` (null: ordinary memory;
// a device step's input_buffers(): memory it reads without a copy).
class BatchPool {
 public:
  size_t buffers() const { return buffers_.size(); }
  // ensures: later buffers come from `source` and hold images in `form`
  //          (kBytes requires augmentation that bytes_carry(): the loader
  //          checks); buffers kept from another source or form are dropped
  //          (returned to their source).
  void use_source(std::shared_ptr<HostBufferSource> source, ImageForm form = ImageForm::kFloats);
  const std::shared_ptr<HostBufferSource>& source() const { return source_; }
  ImageForm form() const { return form_; }

 private:
  friend class BatchLoader;
  std::vector<Batch> buffers_;
  std::shared_ptr<HostBufferSource> source_;
  ImageForm form_ = ImageForm::kFloats;
};

class BatchLoader {
 public:
  // `order`: the example indices of this epoch, in order. `seed` should vary
  // per epoch. depth: batches prepared ahead.
  // `pool`: where the buffers come from and go back to, and the images' form
  // (null: floats, made here, freed with the loader). Throws
  // histocnn::Error for bytes with augmentation they cannot carry.
  BatchLoader(const ExampleSet& set, std::vector<int> order, int batch_size,
              const AugmentOptions& augment, uint64_t seed, int workers, int depth = 4,
              const Normalization& normalization = {}, BatchPool* pool = nullptr);
  // Explicit batch boundaries: batch k is the next batch_sizes[k] examples of
  // `order` (sizes may differ, even be 0: a process's share of a short batch);
  // every batch's buffers hold `capacity` rows.
  BatchLoader(const ExampleSet& set, std::vector<int> order, const std::vector<int>& batch_sizes,
              int capacity, const AugmentOptions& augment, uint64_t seed, int workers,
              int depth = 4, const Normalization& normalization = {}, BatchPool* pool = nullptr);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  int batches() const { return batch_count_; }
  // Swaps the next batch into `out` (whose old buffers are reused); false after
  // the last one, taking `out`'s buffers back (for the pool). Rethrows a
  // worker's exception.
  bool next(Batch& out);
  // Seconds the consumer spent on data: waiting for the workers (the trainer
  // should not), or with 0 workers preparing the batches itself.
  double wait_seconds() const { return wait_seconds_; }
  // Batch buffers made so far (the rest were recycled).
  int buffers_created() const;

 private:
  // A batch of the window being filled: its examples are claimed in chunks.
  struct Open {
    Batch batch;
    bool prepared = false;  // labels and buffers set: its chunks may be claimed
    int claimed = 0;        // examples handed to workers
    int left = 0;           // examples not yet filled
  };
  // A worker's next piece of work: prepare batch `index` (opens), or fill its
  // examples [begin, end).
  struct Claim {
    int index = -1;
    Batch* batch = nullptr;  // open_'s, stable until the batch is done
    bool opens = false;
    int begin = 0, end = 0;
  };
  void work();
  bool claim(Claim& c);           // under mutex_; false: nothing to do now
  void finish(const Claim& c);    // takes mutex_
  void fail_batch(int index);     // takes mutex_; the current exception
  int chunk_of(int count) const;  // examples per claim
  Batch take_spare();             // under mutex_ (workers): a kept batch, or a new one
  void give_back(Batch&& batch);  // under mutex_ (workers): kept if it holds buffers
  // Sets the batch's count, labels and example ids and sizes its buffers.
  void prepare(int index, Batch& batch) const;
  // Examples [begin, end) of a prepared batch; on_team: split over the
  // caller's OpenMP team.
  void fill(Batch& batch, int begin, int end, bool on_team) const;

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
  std::map<int, Open> open_;  // the window's batches being filled
  int next_open_ = 0;         // the next batch to open
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
  BatchPool* pool_;
  ImageForm form_;
};

}  // namespace histocnn
