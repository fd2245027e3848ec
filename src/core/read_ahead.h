// Ordered read-ahead: reader threads prepare numbered batches (decode,
// resize, normalise) ahead of one consumer (the device), which takes them in
// order. `slide` scores a slide's tiles through it and `predict` a list of
// images, so a GPU never waits for a decode that an idle core could have
// done while it computed. With no readers the consumer fills each batch
// itself: a CPU step's team holds every core, and a thread beside it would
// stall the team (docs/results/cpu-loader.md).
//
// Memory is bounded by the readers, never by the work: at most readers + 1
// batches exist at once, each slot reused (a batch's buffers keep their
// capacity from one use to the next).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/stopwatch.h"

namespace histocnn {

struct ReadAheadTimes {
  double read_s = 0;  // the readers' busy time, summed over threads
  double wait_s = 0;  // the consumer waiting for a batch
  int64_t consumed = 0;
};

// The ring of slots: readers claim batch ids in order and fill slot
// id % slots; the consumer takes them in order and frees the slot.
template <class Batch>
class ReadAheadRing {
 public:
  ReadAheadRing(int slots, int64_t batches) : slots_(size_t(slots)), batches_(batches) {}

  // The next batch id for a reader once its slot is free; -1 when done.
  int64_t claim() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return quit_ || next_ >= batches_ || next_ < consumed_ + slots(); });
    if (quit_ || next_ >= batches_) return -1;
    return next_++;
  }
  Batch& batch(int64_t id) { return slot(id).batch; }
  void publish(int64_t id, std::exception_ptr error, double busy_s) {
    std::lock_guard lock(mutex_);
    slot(id).id = id;
    slot(id).ready = true;
    slot(id).error = std::move(error);
    read_s_ += busy_s;
    changed_.notify_all();
  }
  // Waits for batch `id`; rethrows what its reader threw.
  Batch& take(int64_t id) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return slot(id).ready && slot(id).id == id; });
    if (slot(id).error) std::rethrow_exception(slot(id).error);
    return slot(id).batch;
  }
  void release(int64_t id) {
    std::lock_guard lock(mutex_);
    slot(id).ready = false;
    consumed_ = id + 1;
    changed_.notify_all();
  }
  void quit() {
    std::lock_guard lock(mutex_);
    quit_ = true;
    changed_.notify_all();
  }
  double read_seconds() {
    std::lock_guard lock(mutex_);
    return read_s_;
  }

 private:
  struct Slot {
    int64_t id = -1;  // the batch it holds; -1: none yet
    bool ready = false;
    std::exception_ptr error;
    Batch batch;
  };
  Slot& slot(int64_t id) { return slots_[size_t(id) % slots_.size()]; }
  int64_t slots() const { return int64_t(slots_.size()); }
  std::vector<Slot> slots_;
  const int64_t batches_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t next_ = 0, consumed_ = 0;
  bool quit_ = false;
  double read_s_ = 0;
};

// Each batch filled then consumed on the calling thread: no thread beside
// it (a CPU step's OpenMP team holds every core; data/loader.h).
template <class Batch, class Fill, class Consume>
ReadAheadTimes fill_in_turn(int64_t batches, Fill& fill, Consume& consume,
                            const std::atomic<bool>* stop) {
  ReadAheadTimes times;
  Batch batch;
  for (int64_t id = 0; id < batches; ++id) {
    if (stop && stop->load()) break;
    const auto begin = Clock::now();
    fill(id, batch);
    times.read_s += seconds_since(begin);
    consume(id, batch);
    ++times.consumed;
  }
  return times;
}

// Runs fill(id, batch) for ids 0..batches-1 on `readers` threads and
// consume(id, batch) for each on the calling thread, in id order; with 0
// readers both on the calling thread, in turn. Stops between batches once
// *stop is set. What a fill throws is rethrown here, in order (the batches
// before it consumed), after the readers are joined.
// requires: readers >= 0; fill callable from several threads at once on
//           different batches.
template <class Batch, class Fill, class Consume>
ReadAheadTimes read_ahead(int readers, int64_t batches, Fill fill, Consume consume,
                          const std::atomic<bool>* stop = nullptr) {
  require(readers >= 0, "read-ahead: a negative count of readers");
  if (readers == 0) return fill_in_turn<Batch>(batches, fill, consume, stop);
  ReadAheadRing<Batch> ring(readers + 1, batches);
  auto read = [&] {
    for (int64_t id; (id = ring.claim()) >= 0;) {
      const auto begin = Clock::now();
      std::exception_ptr error;
      try {
        fill(id, ring.batch(id));
      } catch (...) {
        error = std::current_exception();
      }
      ring.publish(id, std::move(error), seconds_since(begin));
    }
  };
  std::vector<std::thread> threads;
  struct Joiner {  // joins on every way out, errors included
    ReadAheadRing<Batch>& ring;
    std::vector<std::thread>& threads;
    ~Joiner() {
      ring.quit();
      for (auto& t : threads) t.join();
    }
  } joiner{ring, threads};
  const int64_t useful = std::max<int64_t>(1, std::min<int64_t>(readers, batches));
  for (int64_t r = 0; r < useful; ++r) threads.emplace_back(read);

  ReadAheadTimes times;
  for (int64_t id = 0; id < batches; ++id) {
    if (stop && stop->load()) break;
    const auto waiting = Clock::now();
    Batch& batch = ring.take(id);
    times.wait_s += seconds_since(waiting);
    consume(id, batch);
    ring.release(id);
    ++times.consumed;
  }
  times.read_s = ring.read_seconds();
  return times;
}

}  // namespace histocnn
