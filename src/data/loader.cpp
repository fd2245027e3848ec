#include "data/loader.h"

#include <algorithm>
#include <chrono>
#include <exception>

#include "core/error.h"
#include "core/rng.h"

namespace histocnn {

namespace {
std::vector<int> uniform_batches(size_t examples, int batch_size) {
  std::vector<int> sizes;
  for (size_t begin = 0; begin < examples; begin += size_t(batch_size))
    sizes.push_back(int(std::min<size_t>(size_t(batch_size), examples - begin)));
  return sizes;
}
}  // namespace

int loader_workers_for(bool step_on_cpu, int cores) {
  return step_on_cpu ? 0 : std::max(0, cores - 1);
}

BatchLoader::BatchLoader(const ExampleSet& set, std::vector<int> order, int batch_size,
                         const AugmentOptions& augment, uint64_t seed, int workers, int depth,
                         const Normalization& normalization)
    : BatchLoader(set, order, uniform_batches(order.size(), batch_size), batch_size, augment, seed,
                  workers, depth, normalization) {}

BatchLoader::BatchLoader(const ExampleSet& set, std::vector<int> order,
                         const std::vector<int>& batch_sizes, int capacity,
                         const AugmentOptions& augment, uint64_t seed, int workers, int depth,
                         const Normalization& normalization)
    : set_(set),
      order_(std::move(order)),
      batch_size_(capacity),
      batch_count_(int(batch_sizes.size())),
      augment_(augment),
      normalization_(normalization),
      seed_(seed),
      depth_(std::max(1, depth)),
      workers_(std::max(0, workers)) {
  starts_.push_back(0);
  for (int size : batch_sizes) {
    require(size >= 0 && size <= capacity, "loader: a batch of " + std::to_string(size) +
                                               " rows exceeds its capacity of " +
                                               std::to_string(capacity));
    starts_.push_back(starts_.back() + size);
  }
  require(size_t(starts_.back()) == order_.size(), "loader: batch sizes do not cover the order");
  for (int w = 0; w < workers_; ++w) threads_.emplace_back([this, w] { work(w); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  for (auto& t : threads_) t.join();
}

void BatchLoader::fill(int index, Batch& batch, bool on_team) const {
  const size_t per = size_t(3) * set_.width * set_.height;
  const int begin = starts_[size_t(index)];
  batch.count = starts_[size_t(index) + 1] - begin;
  batch.images.resize(per * batch_size_);
  batch.labels.assign(batch_size_, 0);
  batch.example_ids.assign(batch.count, 0);
  for (int i = 0; i < batch.count; ++i) {
    const int e = order_[begin + i];
    if (e < 0 || size_t(e) >= set_.examples.size())
      fail("loader: example " + std::to_string(e) + " does not exist (" +
           std::to_string(set_.examples.size()) + " examples)");
    batch.example_ids[i] = e;
    batch.labels[i] = set_.examples[e].label;
  }
  // Each example depends only on its own seed, so the batch is the same
  // whichever thread prepares which example. An exception must not leave an
  // OpenMP region: the first is kept and rethrown after it.
  const int count = batch.count;
  std::exception_ptr failure;
#pragma omp parallel for schedule(static) if (on_team && count > 1)
  for (int i = 0; i < count; ++i) {
    try {
      const int e = batch.example_ids[size_t(i)];
      uint64_t s = seed_ ^ (uint64_t(e) * 0x9E3779B97F4A7C15ull);
      augment_to_chw(set_.pixels_of(e), set_.width, set_.height, augment_, splitmix64(s),
                     batch.images.data() + per * size_t(i), normalization_);
    } catch (...) {
#pragma omp critical(histocnn_loader_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

void BatchLoader::work(int worker) {
  for (int index = worker; index < batch_count_; index += workers_) {
    Batch batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] { return stop_ || index < consumed_ + depth_; });
      if (stop_) return;
      if (!spare_.empty()) {
        batch = std::move(spare_.back());
        spare_.pop_back();
      } else {
        ++buffers_created_;
      }
    }
    try {
      fill(index, batch, false);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_ || index < error_index_) {
          error_ = std::current_exception();
          error_index_ = index;
        }
      }
      ready_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.emplace(index, std::move(batch));
    }
    ready_.notify_all();
  }
}

int BatchLoader::buffers_created() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buffers_created_;
}

bool BatchLoader::next(Batch& out) {
  if (consumed_ >= batch_count_) return false;
  const auto start = std::chrono::steady_clock::now();
  if (workers_ == 0) {  // no thread beside the caller's: its OpenMP team prepares the batch
    fill(consumed_++, out, true);
    wait_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  // A failure of an earlier batch than this one ends the epoch; a later one
  // waits its turn (batches come out in order).
  ready_.wait(lock,
              [&] { return done_.count(consumed_) > 0 || (error_ && error_index_ <= consumed_); });
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!done_.count(consumed_)) std::rethrow_exception(error_);
  std::swap(out, done_[consumed_]);
  spare_.push_back(std::move(done_[consumed_]));  // the caller's previous buffers
  done_.erase(consumed_);
  ++consumed_;
  lock.unlock();
  space_.notify_all();
  return true;
}

}  // namespace histocnn
