#include "data/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>
#include <tuple>

#include "core/checked.h"
#include "core/counter_hash.h"
#include "core/error.h"
#include "core/machine_memory.h"
#include "core/parallel_for.h"
#include "core/rng.h"
#include "data/augment.h"

namespace histocnn {

GlasFolder open_glas_folder(const std::string& root, const std::string& split,
                            const std::string& labels) {
  namespace fs = std::filesystem;
  require(fs::is_directory(root), root + ": data folder not found");
  GlasFolder folder;
  folder.root = root;
  const std::string csv = (fs::path(root) / "Grade.csv").string();
  const auto rows = read_grade_csv(csv);
  folder.labels = resolve_label_scheme(labels, rows, csv);
  const std::vector<int> classes = class_labels(folder.labels, rows, csv);
  static const char* kExtensions[] = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
                                      ".BMP", ".PNG", ".JPG", ".JPEG", ".TIF", ".TIFF"};
  for (size_t r = 0; r < rows.size(); ++r) {
    const GradeRow& row = rows[r];
    if (!split.empty() && split != "all" && row.name.rfind(split, 0) != 0) continue;
    std::string found;
    for (const char* ext : kExtensions) {
      const fs::path candidate = fs::path(root) / (row.name + ext);
      if (fs::is_regular_file(candidate)) {
        found = candidate.string();
        break;
      }
    }
    require(!found.empty(), (fs::path(root) / row.name).string() +
                                ".{bmp,png,jpg,tif}: image listed in Grade.csv is missing");
    folder.images.push_back({row.name, found, row.patient, classes[r]});
  }
  require(!folder.images.empty(),
          root + ": no images in split '" + split + "' (names must start with it)");
  return folder;
}

std::vector<int> patient_folds(const std::vector<SlideImage>& images, int k, uint64_t seed) {
  // Stratified group k-fold: every image of a patient in one fold, and each
  // fold's class mix as close to the whole set's as the patients allow.
  int classes = 2;
  for (const auto& im : images) classes = std::max(classes, im.label + 1);
  struct Patient {
    std::string id;
    std::vector<int> count;
    int total() const { return std::accumulate(count.begin(), count.end(), 0); }
    int majority() const {  // ties to the lower class
      return int(std::max_element(count.begin(), count.end()) - count.begin());
    }
  };
  std::map<std::string, Patient> by_id;
  for (const auto& im : images) {
    Patient& p = by_id[im.patient];
    p.id = im.patient;
    p.count.resize(size_t(classes), 0);
    p.count[size_t(im.label)]++;
  }
  require(k >= 2, "--folds: need at least 2 folds, got " + std::to_string(k));
  require(int(by_id.size()) >= k, "--folds: " + std::to_string(k) + " folds but only " +
                                      std::to_string(by_id.size()) + " patients");
  std::vector<Patient> patients;
  for (auto& [id, p] : by_id) patients.push_back(p);
  Rng rng(seed);
  std::shuffle(patients.begin(), patients.end(), rng);
  // Largest patients first, each into the fold with the fewest images of its
  // majority class (then the fewest images), so classes spread evenly.
  std::stable_sort(patients.begin(), patients.end(),
                   [](const Patient& a, const Patient& b) { return a.total() > b.total(); });
  std::vector<std::vector<int>> fold_counts(size_t(k), std::vector<int>(size_t(classes), 0));
  const auto total = [](const std::vector<int>& v) {
    return std::accumulate(v.begin(), v.end(), 0);
  };
  std::map<std::string, int> fold_of;
  for (const auto& p : patients) {
    const size_t c = size_t(p.majority());
    size_t best = 0;
    for (size_t f = 1; f < size_t(k); ++f) {
      const auto& a = fold_counts[f];
      const auto& b = fold_counts[best];
      if (a[c] < b[c] || (a[c] == b[c] && total(a) < total(b))) best = f;
    }
    fold_of[p.id] = int(best);
    for (size_t j = 0; j < size_t(classes); ++j) fold_counts[best][j] += p.count[j];
  }
  std::vector<int> folds;
  for (const auto& im : images) folds.push_back(fold_of[im.patient]);
  return folds;
}

std::vector<int> CropOptions::crops_by_class(int classes) const {
  if (!class_crops.empty()) {
    require(int(class_crops.size()) == classes,
            "crop counts for " + std::to_string(class_crops.size()) + " classes, but there are " +
                std::to_string(classes));
    return class_crops;
  }
  if (crops_per_class > 0) return std::vector<int>(size_t(classes), crops_per_class);
  if (classes == 2) return {benign_crops, malignant_crops};
  require(benign_crops == 941 && malignant_crops == 910,
          "--crops-benign/--crops-malignant: apply to the two GlaS classes; with " +
              std::to_string(classes) + " classes use --crops-per-class");
  return std::vector<int>(size_t(classes), (1851 + classes - 1) / classes);
}

Normalization channel_statistics(const ExampleSet& set) {
  double sum[3] = {0, 0, 0}, sum_sq[3] = {0, 0, 0};
  const size_t pixels = set.pixels.size() / 3;
  for (size_t i = 0; i < pixels; ++i)
    for (int c = 0; c < 3; ++c) {
      const double v = set.pixels[3 * i + c] / 255.0;
      sum[c] += v;
      sum_sq[c] += v * v;
    }
  Normalization n;
  for (int c = 0; c < 3; ++c) {
    const double mean = pixels ? sum[c] / double(pixels) : 0.0;
    const double var = pixels ? sum_sq[c] / double(pixels) - mean * mean : 1.0;
    n.mean[c] = float(mean);
    n.stdev[c] = float(std::sqrt(std::max(var, 1e-6)));
  }
  return n;
}

namespace {

// A crop position; with a background map, positions with more background
// than `max_background` are drawn again (up to 16 draws, the least empty kept).
void draw_crop(Rng& rng, int image_w, int image_h, int w, int h, const BackgroundMap* background,
               float max_background, int* x, int* y) {
  *x = int(rng.below(uint64_t(image_w - w + 1)));
  *y = int(rng.below(uint64_t(image_h - h + 1)));
  if (!background) return;
  float least = background->fraction(*x, *y, w, h);
  for (int attempt = 1; attempt < 16 && least > max_background; ++attempt) {
    const int cx = int(rng.below(uint64_t(image_w - w + 1)));
    const int cy = int(rng.below(uint64_t(image_h - h + 1)));
    const float f = background->fraction(cx, cy, w, h);
    if (f < least) least = f, *x = cx, *y = cy;
  }
}

}  // namespace

bool is_background(const uint8_t rgb[3]) {
  return rgb[0] >= 210 && rgb[1] >= 210 && rgb[2] >= 210;
}

BackgroundMap::BackgroundMap(const Image& image)
    : width_(image.width),
      height_(image.height),
      sums_((size_t(image.width) + 1) * (size_t(image.height) + 1), 0) {
  const size_t stride = size_t(width_) + 1;
  for (int y = 0; y < height_; ++y) {
    uint32_t row = 0;
    const uint8_t* p = image.row(y);
    for (int x = 0; x < width_; ++x, p += 3) {
      row += is_background(p) ? 1 : 0;
      sums_[(y + 1) * stride + x + 1] = sums_[y * stride + x + 1] + row;
    }
  }
}

float BackgroundMap::fraction(int x, int y, int width, int height) const {
  require(
      x >= 0 && y >= 0 && width > 0 && height > 0 && x + width <= width_ && y + height <= height_,
      "BackgroundMap: rectangle outside the image");
  const size_t stride = size_t(width_) + 1;
  const uint32_t count = sums_[(y + height) * stride + x + width] - sums_[y * stride + x + width] -
                         sums_[(y + height) * stride + x] + sums_[y * stride + x];
  return float(count) / (float(width) * float(height));
}

namespace {

// `count` of `members` (image indices), drawn at random (seeded) and kept in
// their order: fewer crops than images (a class folder of 10,000 tiles) must
// not take the first ones, which sorted names may group by slide.
std::vector<int> sample_members(std::vector<int> members, int count, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < size_t(count); ++i)  // partial Fisher-Yates
    std::swap(members[i], members[i + size_t(rng() % (members.size() - i))]);
  members.resize(size_t(count));
  std::sort(members.begin(), members.end());
  return members;
}

}  // namespace

std::vector<int> stain_target_sample(size_t images) {
  std::vector<int> chosen(images);
  std::iota(chosen.begin(), chosen.end(), 0);
  if (chosen.size() <= kStainTargetImages) return chosen;
  // A fixed seed: every process of a run, and every resume, takes the same.
  return sample_members(std::move(chosen), int(kStainTargetImages), 0x5EED57A1);
}

StainMatrix estimate_stain_target(const std::vector<SlideImage>& images, int workers,
                                  StainMethod method) {
  require(!images.empty(), "no images to estimate a stain target from");
  constexpr size_t kStride = 7;
  const std::vector<int> chosen = stain_target_sample(images.size());
  std::vector<std::vector<uint8_t>> samples(chosen.size());
  parallel_for(chosen.size(), workers, [&](size_t i) {
    const Image im = load_image(images[size_t(chosen[i])].path);
    const size_t pixels = size_t(im.width) * im.height;
    for (size_t p = 0; p < pixels; p += kStride)
      samples[i].insert(samples[i].end(), &im.rgb[3 * p], &im.rgb[3 * p] + 3);
  });
  std::vector<uint8_t> pooled;
  for (const auto& s : samples) pooled.insert(pooled.end(), s.begin(), s.end());
  return estimate_stains_with(
      method, pooled.data(), pooled.size() / 3,
      std::string("the training images (--stain-normalize ") + stain_method_name(method) + ")");
}

namespace {

// The examples' plan (image, label; crop positions come later), independent
// of threading: whole images, or each class's crops spread evenly over its
// images (the remainder to the first; a random subset when there are fewer
// crops than images).
std::vector<Example> plan_examples(const std::vector<SlideImage>& images,
                                   const CropOptions& options) {
  int classes = options.classes ? options.classes : int(options.class_crops.size());
  for (const auto& im : images) {
    require(im.label >= 0 && (options.classes == 0 || im.label < options.classes),
            im.path + ": label " + std::to_string(im.label) + " is not a class");
    classes = std::max({classes, 2, im.label + 1});
  }
  std::vector<Example> examples;
  if (options.whole_image) {
    for (size_t i = 0; i < images.size(); ++i) examples.push_back({int(i), images[i].label, 0, 0});
    return examples;
  }
  require(options.crop_width > 0 && options.crop_height > 0, "--crop: must be positive");
  std::vector<std::vector<int>> by_class(static_cast<size_t>(classes));
  for (size_t i = 0; i < images.size(); ++i) by_class[size_t(images[i].label)].push_back(int(i));
  const std::vector<int> wanted = options.crops_by_class(classes);
  for (int label = 0; label < classes; ++label) {
    std::vector<int> members = by_class[size_t(label)];
    if (members.empty() || wanted[size_t(label)] <= 0) continue;
    if (size_t(wanted[size_t(label)]) < members.size())
      members = sample_members(std::move(members), wanted[size_t(label)],
                               options.seed * 1000003 + uint64_t(label));
    for (int c = 0; c < wanted[size_t(label)]; ++c)
      examples.push_back({members[size_t(c) % members.size()], label, -1, -1});
  }
  require(!examples.empty(), "crop counts are zero: nothing to train on");
  return examples;
}

// --fresh-crops: image i kept whole at the crop's scale (a window of the
// input size in it is the crop resized, up to where box filters fall), with
// its background map.
void keep_scaled_source(ExampleSet& set, size_t i, const Image& full, const CropOptions& options) {
  const int sw =
      std::max(set.width, int(std::lround(double(full.width) * set.width / options.crop_width)));
  const int sh = std::max(set.height,
                          int(std::lround(double(full.height) * set.height / options.crop_height)));
  set.sources[i] = resize_area(full, sw, sh);
  set.backgrounds[i] = BackgroundMap(set.sources[i]);
}

// The pixels of image i's examples: the whole image resized, or crops drawn
// with the image's own generator (away from background when asked) and
// resized.
void cut_examples(ExampleSet& set, const std::vector<size_t>& examples, const Image& full,
                  const CropOptions& options, uint64_t seed) {
  const size_t per = size_t(set.width) * set.height * 3;
  std::optional<BackgroundMap> background;
  if (!options.whole_image && options.max_background < 1.0f) background.emplace(full);
  Rng image_rng(seed);
  for (size_t e : examples) {
    Example& ex = set.examples[e];
    Image resized;
    if (options.whole_image) {
      resized = resize_area(full, set.width, set.height);
    } else {
      draw_crop(image_rng, full.width, full.height, options.crop_width, options.crop_height,
                background ? &*background : nullptr, options.max_background, &ex.x, &ex.y);
      resized = resize_area(crop(full, ex.x, ex.y, options.crop_width, options.crop_height),
                            set.width, set.height);
    }
    std::copy(resized.rgb.begin(), resized.rgb.end(), set.pixels.begin() + e * per);
  }
}

// CropOptions::distinct_positions: no image gets more crops than it has
// positions (read from the file headers), the first ones kept. Returns how
// many it left out. An image smaller than the crop keeps its crops, for the
// error that names it when it is decoded.
size_t cap_at_positions(std::vector<Example>& examples, const std::vector<SlideImage>& images,
                        const CropOptions& options, int workers) {
  std::vector<uint64_t> positions(images.size(), 0);
  std::vector<uint64_t> planned(images.size(), 0);
  for (const Example& e : examples) planned[size_t(e.image_index)]++;
  parallel_for(images.size(), workers, [&](size_t i) {
    if (planned[i] < 2) return;
    const auto [w, h] = read_image_size(images[i].path);
    positions[i] = std::max<uint64_t>(1, uint64_t(std::max(0, w - options.crop_width + 1)) *
                                             uint64_t(std::max(0, h - options.crop_height + 1)));
  });
  std::vector<uint64_t> kept(images.size(), 0);
  std::vector<Example> capped;
  for (const Example& e : examples) {
    const size_t i = size_t(e.image_index);
    if (planned[i] < 2 || ++kept[i] <= positions[i]) capped.push_back(e);
  }
  const size_t left_out = examples.size() - capped.size();
  examples = std::move(capped);
  return left_out;
}

}  // namespace

ExampleSet build_examples(const std::vector<SlideImage>& images, const CropOptions& options,
                          int width, int height, int workers,
                          const std::function<bool(size_t image)>& decode) {
  require(!images.empty(), "no images to build examples from");
  ExampleSet set;
  set.width = width;
  set.height = height;
  set.images = images;
  set.examples = plan_examples(images, options);
  const bool distinct = options.distinct_positions && !options.whole_image;
  require(!distinct || !options.fresh_each_epoch,
          "build_examples: distinct positions are for fixed (evaluation) crops");
  if (distinct) set.repeated_positions = cap_at_positions(set.examples, images, options, workers);
  Rng rng(options.seed);
  const size_t per = size_t(width) * height * 3;
  require_fits_in_memory(
      uint64_t(checked_product({int64_t(set.examples.size()), width, height, 3}, "--size")),
      "--size " + std::to_string(width) + "x" + std::to_string(height) + ": " +
          std::to_string(set.examples.size()) + " crops at that size (8-bit pixels)",
      " (use a smaller --size, or fewer crops)");
  set.pixels.resize(set.examples.size() * per);
  const bool fresh = options.fresh_each_epoch && !options.whole_image;
  if (fresh) {
    set.sources.resize(images.size());
    set.backgrounds.resize(images.size());
    set.max_background = options.max_background;
  }
  // Crop positions need the image sizes; decode each image once, in parallel.
  std::vector<std::vector<size_t>> examples_of(images.size());
  for (size_t e = 0; e < set.examples.size(); ++e)
    examples_of[set.examples[e].image_index].push_back(e);
  std::vector<uint64_t> image_seeds(images.size());
  for (auto& s : image_seeds) s = rng.next();
  parallel_for(images.size(), workers, [&](size_t i) {
    if (examples_of[i].empty() || (decode && !decode(i) && !fresh)) return;
    Image full = load_image(images[i].path);
    if (options.stain_target)
      full = normalize_stains(full, *options.stain_target, options.stain_recipe);
    if (!options.whole_image)
      require(full.width >= options.crop_width && full.height >= options.crop_height,
              images[i].path + ": image is " + std::to_string(full.width) + "x" +
                  std::to_string(full.height) + ", smaller than the " +
                  std::to_string(options.crop_width) + "x" + std::to_string(options.crop_height) +
                  " crop");
    if (fresh)
      keep_scaled_source(set, i, full, options);
    else
      cut_examples(set, examples_of[i], full, options, image_seeds[i]);
  });
  if (fresh) recrop(set, options.seed);
  if (distinct && !decode) drop_repeated_crops(set);
  return set;
}

std::string repeated_positions_note(const ExampleSet& set) {
  return std::to_string(set.repeated_positions) + " of the " +
         std::to_string(set.repeated_positions + set.examples.size()) +
         " crops would repeat a position of their image (an image no larger than the crop "
         "has one): each position is scored once";
}

size_t drop_repeated_crops(ExampleSet& set) {
  require(set.sources.empty(), "drop_repeated_crops: a set that redraws its crops each epoch");
  const size_t per = size_t(set.width) * set.height * 3;
  std::set<std::tuple<int, int, int>> seen;  // (image, x, y)
  size_t kept = 0;
  for (size_t e = 0; e < set.examples.size(); ++e) {
    const Example& ex = set.examples[e];
    if (!seen.insert({ex.image_index, ex.x, ex.y}).second) continue;
    if (kept != e) {
      set.examples[kept] = ex;
      std::memcpy(set.pixels.data() + kept * per, set.pixels.data() + e * per, per);
    }
    ++kept;
  }
  const size_t dropped = set.examples.size() - kept;
  set.examples.resize(kept);
  set.pixels.resize(kept * per);
  set.repeated_positions += dropped;
  return dropped;
}

void recrop(ExampleSet& set, uint64_t seed) {
  require(!set.sources.empty(), "recrop: the example set keeps no source images");
  const int w = set.width, h = set.height;
  const size_t per = size_t(w) * h * 3;
  for (size_t e = 0; e < set.examples.size(); ++e) {
    Example& ex = set.examples[e];
    const Image& src = set.sources[size_t(ex.image_index)];
    const BackgroundMap& background = set.backgrounds[size_t(ex.image_index)];
    Rng rng(mix64(seed ^ (uint64_t(e) * 0xD1B54A32D192ED03ull)));
    draw_crop(rng, src.width, src.height, w, h, set.max_background < 1.0f ? &background : nullptr,
              set.max_background, &ex.x, &ex.y);
    uint8_t* out = set.pixels.data() + e * per;
    for (int row = 0; row < h; ++row)
      std::memcpy(out + size_t(row) * w * 3, src.row(ex.y + row) + size_t(ex.x) * 3, size_t(w) * 3);
  }
}

}  // namespace histocnn
