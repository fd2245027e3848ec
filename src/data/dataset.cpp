#include "data/dataset.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/rng.h"

namespace histocnn {

GlasFolder open_glas_folder(const std::string& root, const std::string& split) {
  namespace fs = std::filesystem;
  require(fs::is_directory(root), root + ": data folder not found");
  GlasFolder folder;
  folder.root = root;
  const auto rows = read_grade_csv((fs::path(root) / "Grade.csv").string());
  static const char* kExtensions[] = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff",
                                      ".BMP", ".PNG", ".JPG", ".JPEG"};
  for (const auto& row : rows) {
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
                                ".{bmp,png,jpg}: image listed in Grade.csv is missing");
    folder.images.push_back({row.name, found, row.patient, row.label});
  }
  require(!folder.images.empty(),
          root + ": no images in split '" + split + "' (names must start with it)");
  return folder;
}

std::vector<int> patient_folds(const std::vector<SlideImage>& images, int k, uint64_t seed) {
  std::map<std::string, int> counts;
  for (const auto& im : images) counts[im.patient]++;
  require(k >= 2, "--folds: need at least 2 folds, got " + std::to_string(k));
  require(int(counts.size()) >= k, "--folds: " + std::to_string(k) + " folds but only " +
                                       std::to_string(counts.size()) + " patients");
  std::vector<std::pair<std::string, int>> patients(counts.begin(), counts.end());
  Rng rng(seed);
  std::shuffle(patients.begin(), patients.end(), rng);
  // Largest patients first into the currently smallest fold (stable for ties).
  std::stable_sort(patients.begin(), patients.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<int> fold_size(k, 0);
  std::map<std::string, int> fold_of;
  for (const auto& [patient, n] : patients) {
    const int f = int(std::min_element(fold_size.begin(), fold_size.end()) - fold_size.begin());
    fold_of[patient] = f;
    fold_size[f] += n;
  }
  std::vector<int> folds;
  for (const auto& im : images) folds.push_back(fold_of[im.patient]);
  return folds;
}

ExampleSet build_examples(const std::vector<SlideImage>& images, const CropOptions& options,
                          int width, int height, int workers) {
  require(!images.empty(), "no images to build examples from");
  ExampleSet set;
  set.width = width;
  set.height = height;
  set.images = images;
  // Plan the examples first (deterministic, independent of threading).
  std::vector<std::vector<int>> by_class(2);
  for (size_t i = 0; i < images.size(); ++i) by_class[images[i].label].push_back(int(i));
  Rng rng(options.seed);
  if (options.whole_image) {
    for (size_t i = 0; i < images.size(); ++i) set.examples.push_back({int(i), images[i].label, 0, 0});
  } else {
    require(options.crop_width > 0 && options.crop_height > 0, "--crop: must be positive");
    const int wanted[2] = {options.benign_crops, options.malignant_crops};
    for (int label = 0; label < 2; ++label) {
      const auto& members = by_class[label];
      if (members.empty() || wanted[label] <= 0) continue;
      // Spread the class's crops evenly over its images (remainder to the first).
      for (int c = 0; c < wanted[label]; ++c) {
        const int image = members[size_t(c) % members.size()];
        set.examples.push_back({image, label, -1, -1});
      }
    }
    require(!set.examples.empty(), "crop counts are zero: nothing to train on");
  }
  const size_t per = size_t(width) * height * 3;
  set.pixels.resize(set.examples.size() * per);
  // Crop positions need the image sizes; decode each image once, in parallel.
  std::vector<std::vector<size_t>> examples_of(images.size());
  for (size_t e = 0; e < set.examples.size(); ++e) examples_of[set.examples[e].image_index].push_back(e);
  std::vector<uint64_t> image_seeds(images.size());
  for (auto& s : image_seeds) s = rng.next();
  std::vector<std::string> errors(images.size());
  std::atomic<size_t> next{0};
  auto work = [&]() {
    for (size_t i; (i = next++) < images.size();) {
      if (examples_of[i].empty()) continue;
      try {
        const Image full = load_image(images[i].path);
        Rng image_rng(image_seeds[i]);
        for (size_t e : examples_of[i]) {
          Example& ex = set.examples[e];
          Image resized;
          if (options.whole_image) {
            resized = resize_area(full, width, height);
          } else {
            require(full.width >= options.crop_width && full.height >= options.crop_height,
                    images[i].path + ": image is " + std::to_string(full.width) + "x" +
                        std::to_string(full.height) + ", smaller than the " +
                        std::to_string(options.crop_width) + "x" +
                        std::to_string(options.crop_height) + " crop");
            ex.x = int(image_rng.below(uint64_t(full.width - options.crop_width + 1)));
            ex.y = int(image_rng.below(uint64_t(full.height - options.crop_height + 1)));
            resized = resize_area(crop(full, ex.x, ex.y, options.crop_width, options.crop_height),
                                  width, height);
          }
          std::copy(resized.rgb.begin(), resized.rgb.end(), set.pixels.begin() + e * per);
        }
      } catch (const std::exception& error) {
        errors[i] = error.what();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < std::max(1, workers); ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  return set;
}

}  // namespace histocnn
