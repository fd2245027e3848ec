#include "slide/tile_features.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "nn/safetensors.h"

namespace histocnn {
namespace fs = std::filesystem;
namespace {

const NamedTensor& tensor_of(const SafetensorsFile& f, const std::string& name, size_t dims,
                             bool integer, const std::string& path) {
  const auto it = f.tensors.find(name);
  require(it != f.tensors.end(), path + ": no tensor '" + name + "' (not a tile features file)");
  const NamedTensor& t = it->second;
  // An empty tensor carries no values to tell its type by (a slide without tissue).
  require(t.shape.size() == dims && (t.is_int() == integer || t.element_count() == 0),
          path + ": tensor '" + name + "' has the wrong shape or type");
  return t;
}

int64_t rows_of(const SafetensorsFile& f, const std::string& path) {
  return tensor_of(f, "features", 2, false, path).shape[0];
}

}  // namespace

TileFeatureLog::TileFeatureLog(const std::string& folder, int width, size_t scored)
    : partial_(folder + "/features.partial"),
      final_(folder + "/features.safetensors"),
      width_(width) {
  require(width > 0, "tile features need a network with a dense layer");
  const size_t row_bytes = sizeof(float) * size_t(width);
  if (scored == 0) {
    fs::remove(final_);
    write_file_atomically(partial_, "");
    return;
  }
  const std::string restart = "; --restart scores the slide again";
  if (!fs::exists(partial_)) {
    require(fs::exists(final_), partial_ + ": missing, though tiles.csv holds " +
                                    std::to_string(scored) +
                                    " scored tiles (scored without "
                                    "--features?)" +
                                    restart);
    const SafetensorsFile done = read_safetensors(final_);
    require(rows_of(done, final_) == int64_t(scored) &&
                tensor_of(done, "features", 2, false, final_).shape[1] == width,
            final_ + ": holds other tiles or another width than this run's" + restart);
    return;
  }
  const size_t bytes = size_t(fs::file_size(partial_));
  require(bytes >= scored * row_bytes,
          partial_ + ": holds the features of " + std::to_string(bytes / row_bytes) + " tiles of " +
              std::to_string(width) + " values, tiles.csv " + std::to_string(scored) + restart);
  if (bytes > scored * row_bytes) truncate_file(partial_, scored * row_bytes);
  fs::remove(final_);
}

void TileFeatureLog::append(const std::vector<TileScore>& batch) {
  std::string bytes;
  bytes.reserve(batch.size() * sizeof(float) * size_t(width_));
  for (const TileScore& s : batch) {
    require(int(s.features.size()) == width_, "a tile was scored without its features");
    bytes.append(reinterpret_cast<const char*>(s.features.data()),
                 s.features.size() * sizeof(float));
  }
  append_atomically(partial_, bytes);
}

void TileFeatureLog::finish(const std::vector<Tile>& tiles, const std::vector<TileScore>& scores,
                            const std::map<std::string, std::string>& metadata) {
  if (!fs::exists(partial_) && fs::exists(final_)) return;  // finished before
  require(tiles.size() == scores.size(), "tile features: every tile needs its score");
  const std::string raw = read_file(partial_);
  const size_t n = tiles.size(), w = size_t(width_);
  require(raw.size() == n * w * sizeof(float), partial_ + ": holds " + std::to_string(raw.size()) +
                                                   " bytes, not the " + std::to_string(n) +
                                                   " tiles' features");
  SafetensorsFile f;
  f.metadata = metadata;
  f.metadata["format"] = kTileFeaturesFormat;
  f.metadata["tiles"] = std::to_string(n);
  f.metadata["feature_width"] = std::to_string(w);
  NamedTensor& features = f.tensors["features"];
  features.shape = {int64_t(n), int64_t(w)};
  features.values.resize(n * w);
  if (n) std::memcpy(features.values.data(), raw.data(), raw.size());
  NamedTensor& coords = f.tensors["coords"];
  coords.shape = {int64_t(n), 4};
  NamedTensor& p = f.tensors["p_malignant"];
  NamedTensor& focus = f.tensors["focus"];
  p.shape = focus.shape = {int64_t(n)};
  for (size_t i = 0; i < n; ++i) {
    const Tile& t = tiles[i];
    coords.ints.insert(coords.ints.end(), {t.x, t.y, t.width, t.height});
    p.values.push_back(float(scores[i].p_malignant));
    focus.values.push_back(scores[i].focus);
  }
  write_safetensors(final_, f);
  fs::remove(partial_);
}

TileFeatures read_tile_features(const std::string& path) {
  const SafetensorsFile f = read_safetensors(path);
  const auto format = f.metadata.find("format");
  require(format != f.metadata.end() && format->second == kTileFeaturesFormat,
          path + ": not a tile features file (its metadata has no format '" +
              std::string(kTileFeaturesFormat) + "')");
  TileFeatures t;
  const NamedTensor& features = tensor_of(f, "features", 2, false, path);
  t.rows = features.shape[0];
  t.width = features.shape[1];
  const NamedTensor& coords = tensor_of(f, "coords", 2, true, path);
  const NamedTensor& p = tensor_of(f, "p_malignant", 1, false, path);
  const NamedTensor& focus = tensor_of(f, "focus", 1, false, path);
  require(coords.shape[0] == t.rows && coords.shape[1] == 4 && p.shape[0] == t.rows &&
              focus.shape[0] == t.rows,
          path + ": its tensors disagree on the number of tiles");
  for (float v : features.values) require(std::isfinite(v), path + ": a feature is not finite");
  t.features = features.values;
  t.coords = coords.ints;
  t.p_malignant = p.values;
  t.focus = focus.values;
  t.metadata = f.metadata;
  return t;
}

}  // namespace histocnn
