#include "slide/tile_scorer.h"

#include <cmath>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/stopwatch.h"
#include "train/member_prediction.h"

namespace histocnn {
namespace {

// One batch of network input in flight between a reader and the device.
struct TileBatch {
  int64_t id = -1;  // which batch it holds; -1: free
  bool ready = false;
  int count = 0;
  std::vector<float> input;
  std::exception_ptr error;
};

// The read-ahead ring: readers claim batch ids in order and fill the slot
// id % slots; the device consumes them in order and frees the slot.
class ReadAhead {
 public:
  ReadAhead(int slots, int64_t batches) : slots_(size_t(slots)), batches_(batches) {}

  // The next batch id for a reader once a slot is free; -1 when done.
  int64_t claim() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return quit_ || next_ >= batches_ || next_ < consumed_ + slots(); });
    if (quit_ || next_ >= batches_) return -1;
    return next_++;
  }
  TileBatch& slot(int64_t id) { return slots_[size_t(id) % slots_.size()]; }
  void publish(int64_t id, double busy_s) {
    std::lock_guard lock(mutex_);
    slot(id).id = id;
    slot(id).ready = true;
    read_s_ += busy_s;
    changed_.notify_all();
  }
  TileBatch& wait_for(int64_t id) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return slot(id).ready && slot(id).id == id; });
    return slot(id);
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
  int64_t slots() const { return int64_t(slots_.size()); }
  std::vector<TileBatch> slots_;
  const int64_t batches_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t next_ = 0, consumed_ = 0;
  bool quit_ = false;
  double read_s_ = 0;
};

// Every tile's P(malignant): the members' mean (each averaged over the
// transforms, then calibrated) and their spread.
std::vector<TileScore> score_batch(MemberPredictor& predictor, const TileBatch& batch) {
  predictor.predict(batch.input.data(), batch.count);
  std::vector<TileScore> scores(size_t(batch.count));
  for (int t = 0; t < batch.count; ++t) {
    scores[size_t(t)].p_malignant = predictor.mean_p_malignant(t);
    scores[size_t(t)].member_sd = member_spread(predictor.member_p_malignant(t));
    if (predictor.classes() > 2)
      for (double p : predictor.class_probs(t)) scores[size_t(t)].classes.push_back(float(p));
  }
  return scores;
}

}  // namespace

ScoringTimes score_tiles(const Slide& slide, const TileGrid& grid, const std::vector<Tile>& tiles,
                         size_t first, const std::vector<TrainingStep*>& members,
                         const ScoringOptions& options, const ScoredBatchSink& sink,
                         const std::atomic<bool>* stop) {
  require(!members.empty() && options.batch >= 1 && options.readers >= 1,
          "scoring needs a model, a batch and a reader");
  const auto start = Clock::now();
  const size_t plane = size_t(3) * grid.net_width * grid.net_height;
  const size_t todo = first < tiles.size() ? tiles.size() - first : 0;
  const int64_t batches = int64_t((todo + options.batch - 1) / options.batch);
  ReadAhead ring(options.readers + 1, batches);
  auto read_batches = [&] {
    for (int64_t id; (id = ring.claim()) >= 0;) {
      const auto begin = Clock::now();
      TileBatch& b = ring.slot(id);
      const size_t from = first + size_t(id) * options.batch;
      b.count = int(std::min<size_t>(options.batch, tiles.size() - from));
      b.input.resize(plane * options.batch);
      b.error = nullptr;
      try {
        const std::vector<Image> read =
            read_tiles(slide, grid, tiles, from, size_t(b.count), options.stains);
        for (int t = 0; t < b.count; ++t)
          augment_to_chw(read[t].rgb.data(), grid.net_width, grid.net_height, {}, 0,
                         b.input.data() + plane * t, options.normalization);
      } catch (...) {
        b.error = std::current_exception();
      }
      ring.publish(id, seconds_since(begin));
    }
  };
  std::vector<std::thread> readers;
  struct Joiner {  // joins on every way out, errors included
    ReadAhead& ring;
    std::vector<std::thread>& threads;
    ~Joiner() {
      ring.quit();
      for (auto& t : threads) t.join();
    }
  } joiner{ring, readers};
  for (int r = 0; r < options.readers; ++r) readers.emplace_back(read_batches);

  ScoringTimes times;
  std::vector<Tempering> temperings = options.temperings;
  if (temperings.empty()) temperings.assign(members.size(), Tempering{});
  MemberPredictor predictor(members, temperings, grid.net_width, grid.net_height, options.tta,
                            options.malignant);
  for (int64_t id = 0; id < batches; ++id) {
    if (stop && stop->load()) break;
    const auto waiting = Clock::now();
    TileBatch& b = ring.wait_for(id);
    times.wait_s += seconds_since(waiting);
    if (b.error) std::rethrow_exception(b.error);
    const auto busy = Clock::now();
    const std::vector<TileScore> scores = score_batch(predictor, b);
    times.infer_s += seconds_since(busy);
    times.tiles += b.count;
    ring.release(id);
    sink(first + size_t(id) * options.batch, scores);
  }
  times.read_s = ring.read_seconds();
  times.wall_s = seconds_since(start);
  return times;
}

}  // namespace histocnn
