#include "slide/tile_scorer.h"

#include <algorithm>

#include "core/error.h"
#include "core/read_ahead.h"
#include "core/stopwatch.h"
#include "data/focus.h"
#include "train/member_prediction.h"
#include "train/step_batches.h"

namespace histocnn {
namespace {

// One batch of network input in flight between a reader and the device: as
// floats, or as bytes and tables where every member expands them itself
// (prediction_form: the CUDA step, a quarter of the floats' bytes to send).
struct TileBatch {
  int count = 0;
  std::vector<float> input;     // floats: batch x 3 x H x W
  std::vector<uint8_t> pixels;  // bytes: batch x H x W x 3
  std::vector<float> tables;    // bytes: batch x 3 x 256
  std::vector<float> focus;     // per tile
};

// Every tile's P(malignant): the members' mean (each averaged over the
// transforms, then calibrated) and their spread.
std::vector<TileScore> score_batch(MemberPredictor& predictor, const TileBatch& batch,
                                   bool features) {
  if (batch.pixels.empty())
    predictor.predict(batch.input.data(), batch.count, features);
  else
    predictor.predict(ByteImages{batch.pixels.data(), batch.tables.data()}, batch.count, features);
  std::vector<TileScore> scores(size_t(batch.count));
  for (int t = 0; t < batch.count; ++t) {
    scores[size_t(t)].p_malignant = predictor.mean_p_malignant(t);
    scores[size_t(t)].member_sd = member_spread(predictor.member_p_malignant(t));
    scores[size_t(t)].focus = batch.focus[size_t(t)];
    if (predictor.classes() > 2)
      for (double p : predictor.class_probs(t)) scores[size_t(t)].classes.push_back(float(p));
    if (features) scores[size_t(t)].features = predictor.features(t);
  }
  return scores;
}

void tiles_to_floats(const std::vector<Image>& read, const TileGrid& grid,
                     const Normalization& normalization, TileBatch& b) {
  const size_t plane = size_t(3) * grid.net_width * grid.net_height;
  b.input.resize(plane * read.size());
  for (size_t t = 0; t < read.size(); ++t)
    augment_to_chw(read[t].rgb.data(), grid.net_width, grid.net_height, {}, 0,
                   b.input.data() + plane * t, normalization);
}

void tiles_to_bytes(const std::vector<Image>& read, const TileGrid& grid,
                    const Normalization& normalization, TileBatch& b) {
  const size_t per = size_t(3) * grid.net_width * grid.net_height;
  b.pixels.resize(per * read.size());
  b.tables.resize(size_t(kByteTablesPerImage) * read.size());
  for (size_t t = 0; t < read.size(); ++t)
    augment_to_bytes(read[t].rgb.data(), grid.net_width, grid.net_height, {}, 0,
                     b.pixels.data() + per * t, b.tables.data() + size_t(kByteTablesPerImage) * t,
                     normalization);
}

}  // namespace

ScoringTimes score_tiles(const Slide& slide, const TileGrid& grid, const std::vector<Tile>& tiles,
                         size_t first, const std::vector<TrainingStep*>& members,
                         const ScoringOptions& options, const ScoredBatchSink& sink,
                         const std::atomic<bool>* stop) {
  require(!members.empty() && options.batch >= 1 && options.readers >= 1,
          "scoring needs a model, a batch and a reader");
  const auto start = Clock::now();
  const size_t todo = first < tiles.size() ? tiles.size() - first : 0;
  const int64_t batches = int64_t((todo + options.batch - 1) / options.batch);
  const bool as_bytes = prediction_form(members) == ImageForm::kBytes;
  auto read_batch = [&](int64_t id, TileBatch& b) {
    const size_t from = first + size_t(id) * options.batch;
    b.count = int(std::min<size_t>(options.batch, tiles.size() - from));
    const std::vector<Image> read =
        read_tiles(slide, grid, tiles, from, size_t(b.count), options.stains);
    b.focus.resize(size_t(b.count));
    for (int t = 0; t < b.count; ++t) b.focus[size_t(t)] = float(focus_measure(read[size_t(t)]));
    if (as_bytes)
      tiles_to_bytes(read, grid, options.normalization, b);
    else
      tiles_to_floats(read, grid, options.normalization, b);
  };
  std::vector<Tempering> temperings = options.temperings;
  if (temperings.empty()) temperings.assign(members.size(), Tempering{});
  MemberPredictor predictor(members, temperings, grid.net_width, grid.net_height, options.tta,
                            options.malignant);
  ScoringTimes times;
  auto score = [&](int64_t id, const TileBatch& b) {
    const auto busy = Clock::now();
    const std::vector<TileScore> scores = score_batch(predictor, b, options.features);
    times.infer_s += seconds_since(busy);
    times.tiles += b.count;
    sink(first + size_t(id) * options.batch, scores);
  };
  const ReadAheadTimes ahead =
      read_ahead<TileBatch>(options.readers, batches, read_batch, score, stop);
  times.read_s = ahead.read_s;
  times.wait_s = ahead.wait_s;
  times.wall_s = seconds_since(start);
  return times;
}

}  // namespace histocnn
