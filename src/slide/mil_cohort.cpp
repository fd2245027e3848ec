#include "slide/mil_cohort.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/parallel_for.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "nn/adam.h"
#include "nn/safetensors.h"

namespace histocnn {
namespace fs = std::filesystem;
namespace {

constexpr const char* kMilFormat = "histocnn.attention_mil/1";

// Tiles at least min_focus sharp (all when min_focus is 0).
void drop_out_of_focus(TileFeatures& t, double min_focus) {
  if (min_focus <= 0) return;
  TileFeatures kept = t;
  kept.features.clear(), kept.coords.clear(), kept.p_malignant.clear(), kept.focus.clear();
  kept.rows = 0;
  const size_t w = size_t(t.width);
  for (size_t i = 0; i < size_t(t.rows); ++i) {
    if (t.focus[i] < min_focus) continue;
    kept.features.insert(kept.features.end(), t.features.begin() + std::ptrdiff_t(i * w),
                         t.features.begin() + std::ptrdiff_t((i + 1) * w));
    kept.coords.insert(kept.coords.end(), t.coords.begin() + std::ptrdiff_t(i * 4),
                       t.coords.begin() + std::ptrdiff_t(i * 4 + 4));
    kept.p_malignant.push_back(t.p_malignant[i]);
    kept.focus.push_back(t.focus[i]);
    ++kept.rows;
  }
  t = std::move(kept);
}

// Up to `most` of the bag's rows, drawn without replacement (all, in order,
// when it has no more).
std::vector<float> draw_tiles(const MilBag& bag, int most, Rng& rng) {
  const size_t rows = size_t(bag.tiles.rows), w = size_t(bag.tiles.width);
  if (rows <= size_t(most)) return bag.tiles.features;
  std::vector<size_t> order(rows);
  std::iota(order.begin(), order.end(), size_t(0));
  for (size_t i = 0; i < size_t(most); ++i) std::swap(order[i], order[i + rng.below(rows - i)]);
  std::vector<float> drawn;
  drawn.reserve(size_t(most) * w);
  for (size_t i = 0; i < size_t(most); ++i)
    drawn.insert(drawn.end(), bag.tiles.features.begin() + std::ptrdiff_t(order[i] * w),
                 bag.tiles.features.begin() + std::ptrdiff_t((order[i] + 1) * w));
  return drawn;
}

}  // namespace

std::vector<MilBag> read_mil_cohort(const std::string& cohort, double min_focus) {
  require(fs::is_directory(cohort),
          cohort + ": not a folder (the -o of histocnn slide --features)");
  std::vector<fs::path> folders;
  for (const auto& entry : fs::directory_iterator(cohort))
    if (entry.is_directory() && fs::exists(entry.path() / "features.safetensors"))
      folders.push_back(entry.path());
  std::sort(folders.begin(), folders.end());
  require(!folders.empty(), cohort +
                                ": no slide folder holds features.safetensors (score the "
                                "slides with histocnn slide --features -o " +
                                cohort + ")");
  std::vector<MilBag> bags;
  for (const fs::path& folder : folders) {
    MilBag bag = read_mil_bag(folder.string(), min_focus);
    if (!bags.empty() && bag.tiles.width != bags.front().tiles.width)
      fail((folder / "features.safetensors").string() + ": features " +
           std::to_string(bag.tiles.width) + " wide, " + bags.front().slide + "'s " +
           std::to_string(bags.front().tiles.width) + " (scored by other models?)");
    const fs::path summary = folder / "summary.json";
    if (fs::exists(summary)) {
      bag.summary = nlohmann::json::parse(read_file(summary.string()), nullptr, false);
      require(!bag.summary.is_discarded(), summary.string() + ": not JSON (a torn copy?)");
    }
    bags.push_back(std::move(bag));
  }
  return bags;
}

MilBag read_mil_bag(const std::string& folder, double min_focus) {
  MilBag bag;
  bag.slide = fs::path(folder).filename().string();
  bag.folder = folder;
  bag.tiles = read_tile_features((fs::path(folder) / "features.safetensors").string());
  const auto slide = bag.tiles.metadata.find("slide");
  bag.path = slide == bag.tiles.metadata.end() ? bag.slide : slide->second;
  drop_out_of_focus(bag.tiles, min_focus);
  return bag;
}

void label_mil_bags(std::vector<MilBag>& bags, const SlideLabels& labels) {
  for (MilBag& bag : bags) {
    const SlideLabel* row = labels.find(bag.path);
    if (!row) row = labels.find(bag.slide);
    require(row, labels.path() + ": no row for the slide " + bag.slide + " (" + bag.path + ")");
    bag.label = row->label;
    bag.patient = row->patient;
  }
}

AttentionMil train_attention_mil(const std::vector<const MilBag*>& bags, const MilOptions& o) {
  require(!bags.empty(), "attention MIL: no slides to train on");
  const int width = int(bags.front()->tiles.width);
  AttentionMil model = AttentionMil::initial(width, o.attention, o.seed);
  std::vector<const std::vector<float>*> features;
  for (const MilBag* b : bags) {
    require(b->label == 0 || b->label == 1, "attention MIL: " + b->slide + " has no label");
    if (b->tiles.rows > 0) features.push_back(&b->tiles.features);
  }
  model.standardise(features);
  AdamConfig adam;
  adam.learning_rate = o.learning_rate;
  adam.weight_decay = o.weight_decay;
  adam.epsilon = 1e-8f;
  const size_t n = model.params.size();
  std::vector<float> m(n, 0.0f), v(n, 0.0f), grads(n);
  std::vector<double> g(n);
  Rng rng(o.seed ^ 0x6d696cULL);
  std::vector<size_t> order(bags.size());
  std::iota(order.begin(), order.end(), size_t(0));
  int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t k : order) {
      const MilBag& bag = *bags[k];
      if (bag.tiles.rows == 0) continue;  // no tissue: nothing to learn from
      const std::vector<float> tiles = draw_tiles(bag, o.max_tiles, rng);
      std::fill(g.begin(), g.end(), 0.0);
      model.loss_and_gradient(tiles.data(), int64_t(tiles.size()) / width, bag.label, g);
      for (size_t i = 0; i < n; ++i) grads[i] = float(g[i]);
      adam_update(adam, ++step, int64_t(n), model.params.data(), grads.data(), m.data(), v.data());
    }
  }
  return model;
}

MilCrossValidation cross_validate_mil(const std::vector<MilBag>& bags, int folds,
                                      const MilOptions& o) {
  std::vector<SlideImage> units;
  for (const MilBag& b : bags)
    units.push_back({b.slide, b.path, b.patient.empty() ? "slide:" + b.slide : b.patient, b.label});
  MilCrossValidation cv;
  cv.fold = patient_folds(units, folds, o.seed);
  cv.p.assign(bags.size(), std::nan(""));
  cv.attention.resize(bags.size());
  // Job f < folds: fold f's model scores its held-out bags (bags of one fold
  // are written by one job only). Job `folds`: the final model.
  parallel_for(size_t(folds) + 1, o.threads, [&](size_t job) {
    const int f = int(job);
    std::vector<const MilBag*> train;
    for (size_t i = 0; i < bags.size(); ++i)
      if (cv.fold[i] != f) train.push_back(&bags[i]);
    AttentionMil model = train_attention_mil(train, o);
    if (f == folds) {
      cv.final_model = std::move(model);
      return;
    }
    for (size_t i = 0; i < bags.size(); ++i) {
      if (cv.fold[i] != f || bags[i].tiles.rows == 0) continue;
      AttentionMil::Output out = model.forward(bags[i].tiles.features.data(), bags[i].tiles.rows);
      cv.p[i] = out.p_malignant;
      cv.attention[i] = std::move(out.attention);
    }
  });
  return cv;
}

void save_attention_mil(const std::string& path, const AttentionMil& m,
                        const nlohmann::json& trained) {
  const int64_t d = m.features;
  SafetensorsFile f;
  f.metadata["format"] = kMilFormat;
  f.metadata["trained"] = trained.dump();
  for (const AttentionMil::Block& b : AttentionMil::parameter_blocks(m.features, m.attention)) {
    NamedTensor& t = f.tensors[b.name];
    t.shape = b.shape;
    t.values.assign(m.params.begin() + b.offset, m.params.begin() + b.offset + t.element_count());
  }
  f.tensors["feature_mean"] = NamedTensor{{d}, m.mean, {}};
  f.tensors["feature_inv_sd"] = NamedTensor{{d}, m.inv_sd, {}};
  write_safetensors(path, f);
}

AttentionMil load_attention_mil(const std::string& path, nlohmann::json* trained) {
  const SafetensorsFile f = read_safetensors(path);
  const auto format = f.metadata.find("format");
  require(format != f.metadata.end() && format->second == kMilFormat,
          path + ": not an attention MIL model (written by histocnn mil)");
  auto get = [&](const std::string& name) -> const NamedTensor& {
    const auto it = f.tensors.find(name);
    require(it != f.tensors.end() && !it->second.is_int(), path + ": no tensor " + name);
    return it->second;
  };
  const NamedTensor& v = get("attention_V");
  require(v.shape.size() == 2 && v.shape[0] >= 1 && v.shape[1] >= 1,
          path + ": attention_V is not a matrix");
  AttentionMil m = AttentionMil::initial(int(v.shape[1]), int(v.shape[0]), 0);
  const int64_t d = m.features;
  for (const AttentionMil::Block& b : AttentionMil::parameter_blocks(m.features, m.attention)) {
    const NamedTensor& t = get(b.name);
    require(t.shape == b.shape, path + ": " + b.name + " has the wrong shape");
    std::copy(t.values.begin(), t.values.end(), m.params.begin() + b.offset);
  }
  m.mean = get("feature_mean").values;
  m.inv_sd = get("feature_inv_sd").values;
  require(int64_t(m.mean.size()) == d && int64_t(m.inv_sd.size()) == d,
          path + ": the feature statistics have the wrong width");
  for (float x : m.params) require(std::isfinite(x), path + ": a parameter is not finite");
  if (trained) {
    const auto t = f.metadata.find("trained");
    *trained = t == f.metadata.end() ? nlohmann::json::object()
                                     : nlohmann::json::parse(t->second, nullptr, false);
  }
  return m;
}

}  // namespace histocnn
