#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>

#include "backends/backend.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/read_ahead.h"
#include "core/threads.h"
#include "data/image.h"
#include "data/image_folders.h"
#include "data/loader.h"
#include "data/slide.h"
#include "study/explanation_figure.h"
#include "study/gnuplot.h"
#include "train/checkpoint.h"
#include "train/ensemble.h"
#include "train/evaluate.h"
#include "train/explain.h"
#include "train/image_batches.h"
#include "train/member_prediction.h"

namespace histocnn::cli {
namespace {

// Why an image should go to a pathologist: its calibrated probability is not
// sure enough, or an ensemble's members disagree; "no" otherwise.
std::string referral(double p_malignant, double spread, double below, double max_spread) {
  const bool unsure = std::max(p_malignant, 1 - p_malignant) < below;
  const bool disagree = spread > max_spread;
  if (unsure && disagree) return "uncertain+disagree";
  return unsure ? "uncertain" : disagree ? "disagree" : "no";
}

// The explanation files of each image: <dir>/<name>.gradcam(.overlay).png,
// names made unique (-2, -3, ...) where two images share one.
std::vector<std::string> explanation_bases(const std::string& dir,
                                           const std::vector<std::string>& images) {
  std::vector<std::string> bases;
  std::map<std::string, int> seen;
  for (const auto& path : images) {
    std::string name = std::filesystem::path(path).stem().string();
    if (const int n = ++seen[name]; n > 1) name += "-" + std::to_string(n);
    bases.push_back((std::filesystem::path(dir) / (name + ".gradcam")).string());
  }
  return bases;
}

// Refuses explanation files that would replace an input image, and checks
// the folder is writable.
void check_explanation_files(const std::string& dir, const std::vector<std::string>& bases,
                             const std::vector<std::string>& images) {
  std::map<std::string, std::string> inputs;  // canonical path -> as given
  for (const auto& path : images) inputs[std::filesystem::weakly_canonical(path).string()] = path;
  for (const auto& base : bases)
    for (const std::string& file : {base + ".png", base + ".overlay.png"}) {
      const auto hit = inputs.find(std::filesystem::weakly_canonical(file).string());
      if (hit != inputs.end())
        fail("--explain " + dir + ": would overwrite the input image " + hit->second);
    }
  prepare_output_file("--explain", bases.front() + ".png");
}

// The Grad-CAM figure of the predicted class of one image (`probs`: the
// image's class probabilities).
void write_explanation(const std::string& base, const Image& image,
                       const std::vector<ModelFile>& models, const std::vector<CropBox>& boxes,
                       const std::vector<double>& probs, const std::string& image_path,
                       const std::string& model_path) {
  const int target = int(std::max_element(probs.begin(), probs.end()) - probs.begin());
  char title[512];
  std::snprintf(title, sizeof title, "%s: where %s saw %s (P = %.3f)",
                std::filesystem::path(image_path).filename().c_str(),
                std::filesystem::path(model_path).filename().c_str(),
                models.front().labels.classes[size_t(target)].c_str(), probs[size_t(target)]);
  write_explanation_figure(base, image, explain_image(image, models, boxes, target), title);
}

// With more than two classes: ",class,p_<class>..." after the binary columns.
std::string class_header(const LabelScheme& labels) {
  if (labels.count() <= 2) return "";
  std::string header = ",class";
  for (const auto& name : labels.classes) header += "," + csv_field("p_" + name);
  return header;
}
std::string class_columns(const LabelScheme& labels, const std::vector<double>& probs) {
  if (labels.count() <= 2) return "";
  const size_t top = size_t(std::max_element(probs.begin(), probs.end()) - probs.begin());
  std::string row = "," + csv_field(labels.classes[top]);
  for (double p : probs) {
    char number[32];
    std::snprintf(number, sizeof number, ",%.6f", p);
    row += number;
  }
  return row;
}

struct PredictArgs {
  std::vector<std::string> models;
  std::string device = "cpu";
  std::vector<std::string> images;
  int tiles = 3, threads = 0, batch = 64, readers = -1;  // readers < 0: loader_workers_for
  bool tta = false, calibrated = true;
  double refer_below = 0.9, refer_spread = 0.15;
  std::string explain;
};

void add_predict_options(CLI::App* cmd, PredictArgs* a) {
  cmd->add_option("--model,-m", a->models,
                  "model, checkpoint or ensemble (safetensors); several -m average their "
                  "predictions")
      ->required()
      ->allow_extra_args(false);  // one file per -m: what follows is not another model
  cmd->add_option("images", a->images,
                  "image files, or folders: every image in them or below (sorted; hidden files "
                  "and GlaS *_anno masks left out)")
      ->required();
  cmd->add_option("--tiles", a->tiles,
                  "crops per side: the image is tiled tiles x tiles and averaged")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  cmd->add_flag("--tta,!--no-tta", a->tta,
                "test-time augmentation: average every tile over its 8 flips/rotations "
                "(default: what the model's recipe recorded)");
  cmd->add_flag("!--no-calibration", a->calibrated,
                "ignore the models' temperatures and print raw probabilities");
  cmd->add_option("--refer-below", a->refer_below,
                  "refer an image to a pathologist (column refer) when the calibrated "
                  "probability of its predicted class is below this")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 1.0));
  cmd->add_option("--refer-spread", a->refer_spread,
                  "... or when an ensemble's members disagree by more than this (standard "
                  "deviation of their P(malignant))")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--explain", a->explain,
                  "write a Grad-CAM map of every image into this folder: NAME.gradcam.png (the "
                  "image with where the network looked for its predicted class, colour bar) and "
                  "NAME.gradcam.overlay.png");
  cmd->add_option("--threads", a->threads, "CPU cores (0 = all)")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--batch", a->batch,
                  "crops per device call: the crops of batch / (tiles x tiles) images, at least "
                  "one image's")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--readers", a->readers,
                  "threads decoding images and cutting their crops ahead of the device (default: "
                  "none on CPU, where the compute threads decode each batch in turn; cores - 1 "
                  "with --device cuda)")
      ->check(CLI::Range(0, 256));
}

// One image's answer: P(malignant) per member and each class's probability,
// both averaged over the image's tiles.
struct ImageScores {
  std::vector<double> p_members, classes;
  double mean() const {
    double m = 0;
    for (double v : p_members) m += v / double(p_members.size());
    return m;
  }
};

// The scores of the image whose tiles are rows [first, first + tiles) of the
// predictor's last batch.
ImageScores image_scores(const MemberPredictor& predictor, int first, int tiles) {
  ImageScores s{std::vector<double>(size_t(predictor.members()), 0.0),
                std::vector<double>(size_t(predictor.classes()), 0.0)};
  for (int t = first; t < first + tiles; ++t) {
    for (int m = 0; m < predictor.members(); ++m)
      s.p_members[size_t(m)] += predictor.p_malignant(t, m) / tiles;
    const std::vector<double> c = predictor.class_probs(t);
    for (size_t k = 0; k < c.size(); ++k) s.classes[k] += c[k] / tiles;
  }
  return s;
}

// The image's CSV row (the header before the first); `ensemble`: more than
// one member (several -m, or one ensemble file).
void print_row(const PredictArgs& a, const LabelScheme& labels, const std::string& path,
               const ImageScores& s, bool ensemble, bool first) {
  if (first)
    std::printf("image,p_malignant,prediction%s,refer%s\n", ensemble ? ",member_sd" : "",
                class_header(labels).c_str());
  const double mean = s.mean(), spread = member_spread(s.p_members);
  std::printf("%s,%.6f,%s", csv_field(path).c_str(), mean, mean >= 0.5 ? "malignant" : "benign");
  if (ensemble) std::printf(",%.6f", spread);
  std::printf(",%s%s\n", referral(mean, spread, a.refer_below, a.refer_spread).c_str(),
              class_columns(labels, s.classes).c_str());
}

// Every input checked readable and the explanations' folder made and known
// writable before any output, so an error leaves no header without rows.
std::unique_ptr<OutputFolder> check_predict_inputs(const PredictArgs& a,
                                                   const std::vector<std::string>& bases) {
  for (const auto& path : a.images) {
    std::error_code ec;
    require(std::filesystem::is_regular_file(path, ec),
            path + (std::filesystem::exists(path, ec) ? ": not a regular file"
                                                      : ": no such image file"));
    // A few crops of a whole slide would stand for all of it.
    require(!looks_like_whole_slide(path),
            path +
                ": a whole-slide image; score it with `histocnn slide`, which tiles its "
                "tissue at the model's scale (predict scores a few crops of an image)");
  }
  if (a.explain.empty()) return nullptr;
  auto folder = std::make_unique<OutputFolder>(a.explain);
  check_explanation_files(a.explain, bases, a.images);
  return folder;
}

// Folders stand for their images (a tile set of 100,000 files is past what a
// shell can pass), in place, so the rows follow the arguments. --explain may
// not lie in one: its PNGs would be read as images by the next predict of it.
std::vector<std::string> expand_folders(const std::vector<std::string>& arguments,
                                        const std::string& explain) {
  namespace fs = std::filesystem;
  std::vector<std::string> images;
  for (const auto& argument : arguments) {
    std::error_code ec;
    if (!fs::is_directory(argument, ec)) {
      images.push_back(argument);
      continue;
    }
    if (!explain.empty()) {
      const fs::path folder = fs::weakly_canonical(argument);
      const fs::path out = fs::weakly_canonical(explain);
      require(
          std::mismatch(folder.begin(), folder.end(), out.begin(), out.end()).first != folder.end(),
          "--explain " + explain + ": inside the input folder " + argument +
              ", where its figures would be read as images the next time; choose a folder "
              "outside it");
    }
    const std::vector<std::string> inside = images_under(argument);
    images.insert(images.end(), inside.begin(), inside.end());
  }
  return images;
}

int run_predict(PredictArgs& a, const CLI::App& cmd) {
  const int cores = bound_cores(a.threads);
  a.images = expand_folders(a.images, a.explain);
  const std::vector<ModelFile> models = load_ensemble(a.models);
  const ModelFile& model = models.front();  // members share input, crop and stains
  a.tta = resolve_tta(cmd, a.tta, models, a.calibrated);
  const int per_image = model.crop == "whole" ? 1 : a.tiles * a.tiles;
  const int images_per_batch = std::max(1, a.batch / per_image);
  const Device device = select_device(a.device);
  const PredictionSteps steps =
      compile_for_prediction(device, models, images_per_batch * per_image);
  MemberPredictor predictor(
      steps.members, a.calibrated ? temperings_of(models) : std::vector<Tempering>(models.size()),
      model.width, model.height, a.tta, model.labels.malignant);
  const std::vector<std::string> bases = explanation_bases(a.explain, a.images);
  const std::unique_ptr<OutputFolder> folder = check_predict_inputs(a, bases);
  const bool drawn = folder && figures_drawable("predict",
                                                "--explain's Grad-CAM figures are written as "
                                                "overlays without axes beside their scripts");
  const int readers = a.readers >= 0 ? a.readers : loader_workers_for(!device.is_cuda(), cores);
  const ImageBatchReader reader{
      model, a.images, a.tiles, size_t(images_per_batch), folder != nullptr, readers == 0};
  auto answer = [&](int64_t, const ImageBatch& b) {
    if (b.rows > 0) predictor.predict(b.input.data(), b.rows);
    for (size_t k = 0, row = 0; k < b.ready; row += b.images[k++].boxes.size()) {
      const size_t i = b.first + k;
      const PreparedImage& image = b.images[k];
      const ImageScores s = image_scores(predictor, int(row), int(image.boxes.size()));
      print_row(a, model.labels, a.images[i], s, models.size() > 1, i == 0);
      if (folder)
        write_explanation(bases[i], image.image, models, image.boxes, s.classes, a.images[i],
                          a.models.front());
    }
    if (b.error) std::rethrow_exception(b.error);
  };
  const int64_t batches =
      int64_t((a.images.size() + size_t(images_per_batch) - 1) / size_t(images_per_batch));
  read_ahead<ImageBatch>(readers, batches, reader, answer);
  if (folder)
    std::printf("files: %s/%s, *.gradcam.overlay.png (one per image)\n", a.explain.c_str(),
                drawn ? "*.gradcam.png" : "*.gradcam.png.gp (gnuplot draws *.gradcam.png)");
  return 0;
}

}  // namespace

Runner add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand("predict", "P(malignant) for image files (CSV on stdout)");
  auto a = std::make_shared<PredictArgs>();
  add_predict_options(cmd, a.get());
  return [a, cmd] { return run_predict(*a, *cmd); };
}

}  // namespace histocnn::cli
