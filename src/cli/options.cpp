#include "cli/options.h"

#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"

namespace histocnn::cli {

namespace {
Communicator* the_world = nullptr;
}  // namespace

Communicator& world() {
  if (!the_world) {
    static std::unique_ptr<Communicator> single = make_single_process_communicator();
    return *single;
  }
  return *the_world;
}

void set_world(Communicator* communicator) {
  the_world = communicator;
}

void parse_size(const std::string& text, const std::string& flag, int* width, int* height) {
  int w = 0, h = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%dx%d%c", &w, &h, &tail) == 2) {
  } else if (std::sscanf(text.c_str(), "%d%c", &w, &tail) == 1) {
    h = w;
  } else {
    fail(flag + ": '" + text + "' is not a size (use N or WxH, e.g. 200 or 775x522)");
  }
  require(w >= 16 && h >= 16 && w <= 8192 && h <= 8192,
          flag + ": " + text + " is out of range (16..8192 pixels per side)");
  *width = w;
  *height = h;
}

void add_data_options(CLI::App& cmd, DataSelection& data) {
  cmd.add_option("--data", data.folder,
                 "GlaS-layout folder (Grade.csv + images), or class folders (DIR/<class>/*.png, "
                 "as torchvision's ImageFolder; DIR/patients.csv with columns image, patient "
                 "groups them)")
      ->required();
  cmd.add_option("--split", data.split,
                 "use images whose names start with this (train, testA, testB; all); class "
                 "folders: the subfolder holding them, if any (DIR/train/<class>/)")
      ->capture_default_str();
  cmd.add_option("--folds", data.folds, "patient-grouped cross-validation folds (0 = none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  cmd.add_option("--fold", data.fold, "the validation fold (0-based)")->capture_default_str();
  cmd.add_option("--val-split", data.val_split,
                 "validate on this split instead of a fold (e.g. testA)");
  cmd.add_option("--fold-seed", data.fold_seed, "seed of the patient-to-fold assignment")
      ->capture_default_str();
}

void add_crop_options(CLI::App& cmd, CropOptions& crops, CropFlags& flags) {
  cmd.add_option("--crop", flags.crop, "crop size taken from each image before resizing (N or WxH)")
      ->capture_default_str();
  cmd.add_flag("--whole-image", flags.whole, "resize whole images instead of taking random crops");
  cmd.add_option("--crops-benign", crops.benign_crops, "benign crops in total (paper: 941)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--crops-malignant", crops.malignant_crops,
                 "malignant crops in total (paper: 910)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd.add_option("--crops-per-class", crops.crops_per_class,
                 "crops in total per class, the same for every class (default: the two "
                 "counts above for benign/malignant; 1851 / K each for K classes)")
      ->check(CLI::Range(0, 10000000));
  cmd.add_option("--crop-seed", crops.seed, "seed of the crop positions")->capture_default_str();
}

void apply_crop_flags(const CropFlags& flags, CropOptions& crops) {
  crops.whole_image = flags.whole;
  if (!flags.whole) parse_size(flags.crop, "--crop", &crops.crop_width, &crops.crop_height);
}

CLI::Option* add_label_smoothing_options(CLI::App& cmd, elementwise::LabelSmoothing& smoothing) {
  CLI::Option* epsilon =
      cmd.add_option("--label-smoothing", smoothing.epsilon,
                     "take the loss against 1 - E on the label and E spread (as PyTorch's "
                     "CrossEntropyLoss(label_smoothing=E)); 0 = the label alone")
          ->capture_default_str();
  cmd.add_option_function<std::string>(
         "--smooth-to",
         [&smoothing](const std::string& to) { smoothing.neighbours = to == "neighbours"; },
         "where --label-smoothing puts E: all (every class) or neighbours (the classes next to "
         "the label in class order: ordered grades) [all]")
      ->check(CLI::IsMember({"all", "neighbours"}));
  return epsilon;
}

bool resolve_tta(const CLI::App& cmd, bool flag, const std::vector<ModelFile>& models,
                 bool calibrated) {
  const bool tta = cmd.count("--tta") > 0  // either name
                       ? flag
                       : models.front().trained.value("eval_tta", false);
  if (!calibrated) return tta;
  for (const ModelFile& m : models) {
    const nlohmann::json& c = m.trained.value("calibration", nlohmann::json::object());
    if (!c.contains("tta") || c["tta"].get<bool>() == tta)
      continue;  // (a boolean: checked on load)
    std::fprintf(stderr,
                 "warning: the model's temperature was fitted on %s predictions and these are "
                 "%s: its probabilities will be %s (%s, or --no-calibration for raw ones)\n",
                 tta ? "single-view" : "TTA", tta ? "TTA" : "single views",
                 tta ? "underconfident" : "overconfident", tta ? "drop --tta" : "drop --no-tta");
    break;
  }
  return tta;
}

}  // namespace histocnn::cli
