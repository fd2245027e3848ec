// Slide scoring throughput against its two floors, side by side in
// interleaved rounds on the same tiles:
//   read   reader threads only: read the region, stain-normalise, resize,
//          convert (what the device waits for);
//   infer  the device only: the model (every member, every TTA transform) on
//          batches of real tiles held in memory;
//   slide  end to end: score_tiles, readers feeding the device.
// Prints tiles/s per round, the medians, end to end over the slower floor,
// and the process's peak resident memory. --reader both (a pyramidal TIFF):
// read and slide run twice per round, with tiles decoded directly
// (data/tiff_slide.h) and through OpenSlide alone, interleaved.
//   bench_slide MODEL SLIDE [--rounds 3] [--batch 64] [--readers 2]
//               [--threads 0] [--device cpu] [--limit N] [--reader auto|openslide|both]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/stopwatch.h"
#include "core/threads.h"
#include "slide/slide_run.h"
#include "slide/tile_scorer.h"
#include "train/ensemble.h"

namespace histocnn {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double read_only(const Slide& slide, const PreparedSlide& p, const ScoringOptions& o) {
  const auto start = Clock::now();
  std::atomic<size_t> next{0};
  const size_t plane = size_t(3) * p.grid.net_width * p.grid.net_height;
  std::vector<std::thread> readers;
  for (int r = 0; r < o.readers; ++r)
    readers.emplace_back([&] {  // batches of tiles, as the scorer's readers take them
      std::vector<float> chw(plane);
      for (size_t i; (i = next.fetch_add(size_t(o.batch))) < p.tiles.size();) {
        const size_t n = std::min(size_t(o.batch), p.tiles.size() - i);
        for (const Image& tile : read_tiles(slide, p.grid, p.tiles, i, n, o.stains))
          augment_to_chw(tile.rgb.data(), p.grid.net_width, p.grid.net_height, {}, 0, chw.data(),
                         o.normalization);
      }
    });
  for (auto& t : readers) t.join();
  return double(p.tiles.size()) / seconds_since(start);
}

double infer_only(const PreparedSlide& p, const std::vector<TrainingStep*>& members,
                  const ScoringOptions& o) {
  // One batch of real tiles, scored as many times as the slide has batches.
  std::vector<Tile> first(p.tiles.begin(),
                          p.tiles.begin() + std::min<size_t>(o.batch, p.tiles.size()));
  const size_t batches = (p.tiles.size() + o.batch - 1) / o.batch;
  // The reads of this batch are done once, outside the clock.
  const size_t plane = size_t(3) * p.grid.net_width * p.grid.net_height;
  std::vector<float> input(plane * o.batch, 0.f), probs(2 * size_t(o.batch));
  const std::vector<Image> read = read_tiles(*p.slide, p.grid, first, 0, first.size(), o.stains);
  for (size_t t = 0; t < first.size(); ++t)
    augment_to_chw(read[t].rgb.data(), p.grid.net_width, p.grid.net_height, {}, 0,
                   input.data() + plane * t, o.normalization);
  const int transforms = o.tta ? dihedral_count(p.grid.net_width, p.grid.net_height) : 1;
  std::vector<float> transformed(input.size());
  const auto start = Clock::now();
  for (size_t b = 0; b < batches; ++b)
    for (int k = 0; k < transforms; ++k) {
      for (size_t t = 0; t < first.size() && k > 0; ++t)
        dihedral_chw(input.data() + plane * t, transformed.data() + plane * t, 3, p.grid.net_width,
                     p.grid.net_height, k);
      for (TrainingStep* m : members)
        m->predict(k ? transformed.data() : input.data(), int(first.size()), probs.data());
    }
  return double(batches * first.size()) / seconds_since(start);
}

int run(int argc, char** argv) {
  require(argc >= 3,
          "usage: bench_slide MODEL SLIDE [--rounds N] [--batch B] [--readers R] "
          "[--threads T] [--device D] [--limit N] [--reader auto|openslide|both]");
  SlideOptions so;
  int rounds = 3, threads = 0;
  size_t limit = 0;
  std::string device = "cpu", reader = "auto";
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--rounds")
      rounds = std::atoi(value.c_str());
    else if (flag == "--batch")
      so.batch = std::atoi(value.c_str());
    else if (flag == "--readers")
      so.readers = std::atoi(value.c_str());
    else if (flag == "--threads")
      threads = std::atoi(value.c_str());
    else if (flag == "--device")
      device = value;
    else if (flag == "--reader")
      reader = value;
    else if (flag == "--limit")
      limit = size_t(std::atoll(value.c_str()));
    else
      fail(flag + ": unknown flag");
  }
  require(reader == "auto" || reader == "openslide" || reader == "both",
          "--reader: auto, openslide or both, not " + reader);
  if (reader == "openslide") so.reader = SlideReader::openslide;
  bound_cores(threads);
  const std::vector<ModelFile> models = load_ensemble({argv[1]});
  PreparedSlide p = prepare_slide(argv[2], models.front(), so);
  if (limit && p.tiles.size() > limit) p.tiles.resize(limit);
  require(!p.tiles.empty(), std::string(argv[2]) + ": no tissue tiles");
  const PredictionSteps steps = compile_for_prediction(select_device(device), models, so.batch);
  const auto stains = stain_mapping(p, models.front());
  ScoringOptions o{so.batch,
                   so.readers,
                   models.front().trained.value("eval_tta", false),
                   models.front().normalization,
                   stains.get(),
                   temperings_of(models),
                   models.front().labels.malignant};
  std::printf(
      "slide %s: %lldx%lld, %zu levels; %zu tissue tiles of %.0f um read at level %d "
      "(%dx%d px -> %dx%d); batch %d, %d readers, device %s, tta %d\n",
      argv[2], (long long)p.slide->width(), (long long)p.slide->height(), p.slide->levels().size(),
      p.tiles.size(), p.grid.tile_um_x, p.grid.level, p.grid.read_width, p.grid.read_height,
      p.grid.net_width, p.grid.net_height, o.batch, o.readers, device.c_str(), int(o.tta));
  // With --reader both, the second of each pair reads through OpenSlide alone.
  // Each read and slide measurement opens the slide afresh, so neither
  // reader's tile cache holds tiles from an earlier pass (a real run reads
  // each tile once).
  const bool both = reader == "both";
  const auto fresh = [&](SlideReader r) { return open_slide(argv[2], so.mpp, r); };
  std::vector<double> read, infer, slide, read_os, slide_os;
  const auto end_to_end = [&](const Slide& s) {
    const ScoringTimes t =
        score_tiles(s, p.grid, p.tiles, 0, steps.members, o, [](size_t, const auto&) {});
    return std::make_pair(double(t.tiles) / t.wall_s, t);
  };
  for (int r = 0; r < rounds; ++r) {
    read.push_back(read_only(*fresh(so.reader), p, o));
    if (both) read_os.push_back(read_only(*fresh(SlideReader::openslide), p, o));
    infer.push_back(infer_only(p, steps.members, o));
    const auto [rate, t] = end_to_end(*fresh(so.reader));
    slide.push_back(rate);
    if (both) slide_os.push_back(end_to_end(*fresh(SlideReader::openslide)).first);
    std::printf(
        "round %d: read %.0f tiles/s, infer %.0f tiles/s, slide %.0f tiles/s "
        "(device waited %.2f of %.2f s)",
        r + 1, read.back(), infer.back(), slide.back(), t.wait_s, t.wall_s);
    if (both)
      std::printf("; OpenSlide alone: read %.0f, slide %.0f tiles/s", read_os.back(),
                  slide_os.back());
    std::printf("\n");
  }
  const double floor = std::min(median(read), median(infer));
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf(
      "median: read %.0f, infer %.0f, slide %.0f tiles/s; slide / slower floor = %.2f; "
      "peak RSS %.0f MB\n",
      median(read), median(infer), median(slide), median(slide) / floor, usage.ru_maxrss / 1024.0);
  if (both)
    std::printf(
        "OpenSlide alone, median: read %.0f, slide %.0f tiles/s; reader %s: read %.2fx, slide "
        "%.2fx\n",
        median(read_os), median(slide_os), p.slide->reader().c_str(),
        median(read) / median(read_os), median(slide) / median(slide_os));
  return 0;
}

}  // namespace
}  // namespace histocnn

int main(int argc, char** argv) {
  try {
    return histocnn::run(argc, argv);
  } catch (const histocnn::Error& e) {
    std::fprintf(stderr, "bench_slide: %s\n", e.what());
    return 1;
  }
}
