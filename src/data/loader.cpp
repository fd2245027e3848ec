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
                         const Normalization& normalization, BatchPool* pool)
    : BatchLoader(set, order, uniform_batches(order.size(), batch_size), batch_size, augment, seed,
                  workers, depth, normalization, pool) {}

BatchLoader::BatchLoader(const ExampleSet& set, std::vector<int> order,
                         const std::vector<int>& batch_sizes, int capacity,
                         const AugmentOptions& augment, uint64_t seed, int workers, int depth,
                         const Normalization& normalization, BatchPool* pool)
    : set_(set),
      order_(std::move(order)),
      batch_size_(capacity),
      batch_count_(int(batch_sizes.size())),
      augment_(augment),
      normalization_(normalization),
      seed_(seed),
      depth_(std::max(1, depth)),
      workers_(std::max(0, workers)),
      pool_(pool),
      form_(pool ? pool->form() : ImageForm::kFloats) {
  require(form_ == ImageForm::kFloats || bytes_carry(augment),
          "loader: HED jitter cannot travel as bytes (the step wants bytes: use floats)");
  starts_.push_back(0);
  for (int size : batch_sizes) {
    require(size >= 0 && size <= capacity, "loader: a batch of " + std::to_string(size) +
                                               " rows exceeds its capacity of " +
                                               std::to_string(capacity));
    starts_.push_back(starts_.back() + size);
  }
  require(size_t(starts_.back()) == order_.size(), "loader: batch sizes do not cover the order");
  if (pool_) spare_ = std::move(pool_->buffers_);  // after the checks: a refusal keeps them there
  for (int w = 0; w < workers_; ++w) threads_.emplace_back([this] { work(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  for (auto& t : threads_) t.join();
  if (!pool_) return;
  pool_->buffers_ = std::move(spare_);
  for (auto& [index, batch] : done_) pool_->buffers_.push_back(std::move(batch));
  for (auto& [index, open] : open_) pool_->buffers_.push_back(std::move(open.batch));
}

void BatchLoader::prepare(int index, Batch& batch) const {
  const size_t per = size_t(3) * set_.width * set_.height;
  const int begin = starts_[size_t(index)];
  batch.count = starts_[size_t(index) + 1] - begin;
  if (form_ == ImageForm::kBytes) {
    batch.pixels.resize(per * batch_size_);
    batch.tables.resize(size_t(kByteTablesPerImage) * batch_size_);
  } else {
    batch.images.resize(per * batch_size_);
  }
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
}

void BatchLoader::fill(Batch& batch, int begin, int end, bool on_team) const {
  const size_t per = size_t(3) * set_.width * set_.height;
  // Each example depends only on its own seed, so the batch is the same
  // whichever thread prepares which example. An exception must not leave an
  // OpenMP region: the first is kept and rethrown after it.
  std::exception_ptr failure;
#pragma omp parallel for schedule(static) if (on_team && end - begin > 1)
  for (int i = begin; i < end; ++i) {
    try {
      const int e = batch.example_ids[size_t(i)];
      uint64_t s = seed_ ^ (uint64_t(e) * 0x9E3779B97F4A7C15ull);
      if (form_ == ImageForm::kBytes)
        augment_to_bytes(set_.pixels_of(e), set_.width, set_.height, augment_, splitmix64(s),
                         batch.pixels.data() + per * size_t(i),
                         batch.tables.data() + size_t(kByteTablesPerImage) * size_t(i),
                         normalization_);
      else
        augment_to_chw(set_.pixels_of(e), set_.width, set_.height, augment_, splitmix64(s),
                       batch.images.data() + per * size_t(i), normalization_);
    } catch (...) {
#pragma omp critical(histocnn_loader_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

// A batch splits into about one chunk per worker: every worker gets a share of
// even a single open batch.
int BatchLoader::chunk_of(int count) const {
  return std::max(1, (count + workers_ - 1) / workers_);
}

void BatchPool::use_source(std::shared_ptr<HostBufferSource> source, ImageForm form) {
  if (source == source_ && form == form_) return;
  buffers_.clear();
  source_ = std::move(source);
  form_ = form;
}

Batch BatchLoader::take_spare() {
  if (spare_.empty()) {
    ++buffers_created_;
    Batch fresh;
    if (!pool_) return fresh;
    fresh.images = HostFloats(SourcedAllocator<float>(pool_->source()));
    fresh.pixels = HostBytes(SourcedAllocator<uint8_t>(pool_->source()));
    fresh.tables = HostFloats(SourcedAllocator<float>(pool_->source()));
    return fresh;
  }
  Batch batch = std::move(spare_.back());
  spare_.pop_back();
  return batch;
}

void BatchLoader::give_back(Batch&& batch) {
  if (batch.holds_buffers()) spare_.push_back(std::move(batch));
  batch = Batch{};
}

// The earliest prepared batch with unclaimed examples gives a chunk; else the
// window's next batch is opened (its buffers from spare_ when there are any).
bool BatchLoader::claim(Claim& c) {
  for (auto& [index, open] : open_) {
    if (!open.prepared || open.claimed == open.batch.count) continue;
    const int end = std::min(open.batch.count, open.claimed + chunk_of(open.batch.count));
    c = {index, &open.batch, false, open.claimed, end};
    open.claimed = end;
    return true;
  }
  if (next_open_ >= batch_count_ || next_open_ >= consumed_ + depth_ || error_) return false;
  Open& open = open_[next_open_];
  open.batch = take_spare();
  c = {next_open_, &open.batch, true, 0, 0};
  ++next_open_;
  return true;
}

void BatchLoader::finish(const Claim& c) {
  std::lock_guard<std::mutex> lock(mutex_);
  Open& open = open_.at(c.index);
  if (c.opens) {
    open.prepared = true;
    open.left = open.batch.count;
    space_.notify_all();  // its chunks may be claimed
  } else {
    open.left -= c.end - c.begin;
  }
  if (open.left > 0) return;
  done_.emplace(c.index, std::move(open.batch));
  open_.erase(c.index);
  ready_.notify_all();
}

void BatchLoader::fail_batch(int index) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_ || index < error_index_) {
      error_ = std::current_exception();
      error_index_ = index;
    }
  }
  ready_.notify_all();
}

void BatchLoader::work() {
  for (;;) {
    Claim c;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] { return stop_ || claim(c); });
      if (stop_) return;
    }
    // Outside the lock the claim touches only its part of the batch: its
    // rows [begin, end), or all of it while it is prepared (no chunk is
    // claimed before that). open_'s nodes stay put until the batch is done.
    try {
      if (c.opens)
        prepare(c.index, *c.batch);
      else
        fill(*c.batch, c.begin, c.end, false);
    } catch (...) {
      fail_batch(c.index);  // the batch never completes: next() rethrows in its turn
      continue;
    }
    finish(c);
  }
}

int BatchLoader::buffers_created() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buffers_created_;
}

bool BatchLoader::next(Batch& out) {
  if (consumed_ >= batch_count_) {
    const std::lock_guard<std::mutex> lock(mutex_);
    give_back(std::move(out));  // the last batch's buffers, for the pool
    return false;
  }
  const auto start = std::chrono::steady_clock::now();
  if (workers_ == 0) {  // no thread beside the caller's: its OpenMP team prepares the batch
    if (!out.holds_buffers()) out = take_spare();
    prepare(consumed_, out);
    fill(out, 0, out.count, true);
    ++consumed_;
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
  give_back(std::move(done_[consumed_]));  // the caller's previous buffers
  done_.erase(consumed_);
  ++consumed_;
  lock.unlock();
  space_.notify_all();
  return true;
}

}  // namespace histocnn
