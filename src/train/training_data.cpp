#include "train/training_data.h"

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/stopwatch.h"
#include "data/image_folders.h"

namespace histocnn {

std::string describe_evaluated(const DataSelection& s) {
  std::filesystem::path folder = std::filesystem::path(s.folder).lexically_normal();
  if (folder.filename().empty()) folder = folder.parent_path();  // "data/" names "data"
  const std::string name = folder.filename().empty() ? s.folder : folder.filename().string();
  if (!s.val_split.empty()) return name + ", split " + s.val_split;
  if (s.folds == 0) return name + ", split " + (s.split.empty() ? "all" : s.split) + " (all)";
  return name + ", fold " + std::to_string(s.fold) + " of " + std::to_string(s.folds);
}

LabelScheme label_scheme_of(const DataSelection& s) {
  const std::string csv = (std::filesystem::path(s.folder) / "Grade.csv").string();
  if (!std::filesystem::exists(csv))  // class folders (or an error naming the folder)
    return open_dataset_folder(s.folder, s.split, s.labels, s.malignant_classes).labels;
  if (s.labels == "glas" || s.labels == "grade5") return builtin_label_scheme(s.labels);
  return resolve_label_scheme(s.labels, read_grade_csv(csv), csv);
}

LabelScheme select_images(const DataSelection& s, std::vector<SlideImage>* train,
                          std::vector<SlideImage>* validation, std::vector<std::string>* notes) {
  const GlasFolder folder = open_dataset_folder(s.folder, s.split, s.labels, s.malignant_classes);
  if (notes) *notes = folder.notes;
  train->clear();
  validation->clear();
  if (!s.val_split.empty()) {
    *train = folder.images;
    const GlasFolder other =
        open_dataset_folder(s.folder, s.val_split, s.labels, s.malignant_classes);
    require(other.labels.classes == folder.labels.classes,
            "--val-split " + s.val_split + ": its classes differ from --split " + s.split +
                "'s; both need the same class folders");
    *validation = other.images;
    // What trains must not be what validates: a split that contains the
    // validation split (all vs testA, train vs train_1) would report the
    // accuracy of images the network has seen.
    std::set<std::string> trained;
    for (const auto& im : *train) trained.insert(im.name);
    int both = 0;
    std::string example;
    for (const auto& im : *validation)
      if (trained.count(im.name)) both++, example = example.empty() ? im.name : example;
    require(both == 0, "--split " + s.split + " and --val-split " + s.val_split + ": " +
                           std::to_string(both) + " of the " + std::to_string(validation->size()) +
                           " validation images are also training images (e.g. " + example +
                           "); choose splits that do not overlap");
    return folder.labels;
  }
  if (s.folds == 0) {
    *train = folder.images;
    return folder.labels;
  }
  require(s.fold >= 0 && s.fold < s.folds, "--fold: must be in 0.." + std::to_string(s.folds - 1));
  const auto folds = patient_folds(folder.images, s.folds, s.fold_seed);
  for (size_t i = 0; i < folder.images.size(); ++i)
    (folds[i] == s.fold ? validation : train)->push_back(folder.images[i]);
  return folder.labels;
}

void export_examples(const ExampleSet& set, const std::string& path) {
  // Header line (JSON), then labels (int32) and pixels (uint8 NHWC).
  nlohmann::json header = {{"count", set.examples.size()},
                           {"height", set.height},
                           {"width", set.width},
                           {"channels", 3},
                           {"layout", "NHWC uint8, labels int32 first"}};
  std::string content = header.dump() + "\n";
  for (const auto& e : set.examples) {
    const int32_t label = e.label;
    content.append(reinterpret_cast<const char*>(&label), sizeof label);
  }
  content.append(reinterpret_cast<const char*>(set.pixels.data()), set.pixels.size());
  write_file_atomically(path, content);
}

namespace {

// Data parallelism: each process decodes every N-th image; the examples are
// then exchanged so every process holds the whole set (any example may fall
// in its slice after a shuffle) — identical to a single process's set.
ExampleSet build_shared_examples(const std::vector<SlideImage>& images, const CropOptions& crops,
                                 int width, int height, int threads, Communicator& comm) {
  // Fresh crops redraw from every image each epoch: every process keeps all
  // of them (small, at the crop's scale) and draws the same positions.
  if (comm.size() == 1 || crops.fresh_each_epoch)
    return build_examples(images, crops, width, height, threads);
  const auto mine = [&](size_t image) { return int(image % size_t(comm.size())) == comm.rank(); };
  ExampleSet set = build_examples(images, crops, width, height, threads, mine);
  const size_t per = size_t(width) * height * 3;
  std::string packed;  // (example, x, y, pixels) for the examples of my images
  for (size_t e = 0; e < set.examples.size(); ++e) {
    if (!mine(size_t(set.examples[e].image_index))) continue;
    const int64_t header[3] = {int64_t(e), set.examples[e].x, set.examples[e].y};
    packed.append(reinterpret_cast<const char*>(header), sizeof header);
    packed.append(reinterpret_cast<const char*>(set.pixels_of(e)), per);
  }
  const size_t record = 3 * sizeof(int64_t) + per;
  for (const std::string& part : comm.allgather(packed)) {
    require(part.size() % record == 0, "example exchange: a process sent a torn record");
    for (size_t at = 0; at < part.size(); at += record) {
      int64_t header[3];
      std::memcpy(header, part.data() + at, sizeof header);
      require(header[0] >= 0 && size_t(header[0]) < set.examples.size(),
              "example exchange: unknown example");
      const size_t e = size_t(header[0]);
      set.examples[e].x = int(header[1]);
      set.examples[e].y = int(header[2]);
      std::memcpy(set.pixels.data() + e * per, part.data() + at + sizeof header, per);
    }
  }
  // Positions are known only now; the same set in every process, the same drops.
  if (crops.distinct_positions) drop_repeated_crops(set);
  return set;
}

}  // namespace

TrainingData prepare_training_data(const TrainOptions& o, Communicator& comm, int threads) {
  TrainingData d;
  d.labels = select_images(o.data, &d.train_images, &d.val_images, &d.notes);
  require(o.spec.classes() == d.labels.count(),
          "--model: the network's last layer gives " + std::to_string(o.spec.classes()) +
              " outputs but --labels " + d.labels.name + " has " +
              std::to_string(d.labels.count()) + " classes (end the spec with 'dense " +
              std::to_string(d.labels.count()) + "')");
  require(!o.label_smoothing.neighbours || d.labels.ordered(),
          "--smooth-to neighbours: the classes of --labels " + d.labels.name +
              " are in sorted order, not a graded one; list them in order (--labels " +
              d.labels.name + "=a,b,c) or smooth to all");
  require(o.select_by == "none" || !d.val_images.empty(),
          "--select-by: needs validation images (--folds or --val-split)");
  const Clock::time_point t0 = Clock::now();
  d.crops = o.crops;
  d.crops.classes = d.labels.count();
  d.crops.class_crops = d.crops.crops_by_class(d.labels.count());  // recorded as resolved
  // The target depends only on the training images, so every process (and a
  // resumed run) computes the same one; it is stored in the model file.
  if (o.stain_normalize != "none") {
    d.crops.stain_recipe = StainRecipe::parse(o.stain_normalize, "--stain-normalize");
    d.crops.stain_target =
        estimate_stain_target(d.train_images, threads, d.crops.stain_recipe.method);
  }
  d.train_set = build_shared_examples(d.train_images, d.crops, o.width, o.height, threads, comm);
  if (!d.val_images.empty()) {
    CropOptions vc = d.crops;
    vc.fresh_each_epoch = false;  // validation crops stay fixed: comparable epochs
    vc.seed = o.crops.seed + 7919;
    vc.class_crops.assign(size_t(d.labels.count()), 0);
    for (const auto& im : d.val_images) vc.class_crops[size_t(im.label)] += o.val_crops_per_image;
    vc.distinct_positions = true;
    d.val_set = build_shared_examples(d.val_images, vc, o.width, o.height, threads, comm);
    if (d.val_set.repeated_positions > 0)
      d.notes.push_back("validation: " + repeated_positions_note(d.val_set));
  }
  if (o.normalize) d.normalization = channel_statistics(d.train_set);
  d.seconds = seconds_since(t0);
  return d;
}

}  // namespace histocnn
