#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>

#include "backends/backend.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/threads.h"
#include "data/loader.h"
#include "study/eval_figures.h"
#include "study/gnuplot.h"
#include "train/checkpoint.h"
#include "train/ensemble.h"
#include "train/temperature.h"
#include "train/training_data.h"

namespace histocnn::cli {

namespace {

// Figures written beside a class folder's images would be read as images of
// that class by the next training on the folder: refuse an output there.
void refuse_output_in_class_folders(const std::string& output, const std::vector<SlideImage>& train,
                                    const std::vector<SlideImage>& validation) {
  namespace fs = std::filesystem;
  const fs::path where = fs::absolute(output).parent_path().lexically_normal();
  for (const auto* images : {&train, &validation})
    for (const SlideImage& im : *images) {
      const fs::path folder = fs::absolute(im.path).parent_path().lexically_normal();
      require(folder != where, "--output " + output + ": inside the class folder " +
                                   folder.string() +
                                   " of --data, where its figures would become training "
                                   "images of that class; choose a folder outside it");
    }
}

// How many of `images` (from `folder`) any model trained on, per the data
// selection its recipe records; models trained on another folder count none.
int count_training_images(const std::vector<ModelFile>& models, const std::string& folder,
                          const std::vector<SlideImage>& images) {
  const auto canonical = [](const std::string& path) {
    return std::filesystem::absolute(path).lexically_normal().string();
  };
  std::set<std::string> trained_on;
  for (const ModelFile& m : models) {
    const auto& t = m.trained;
    if (!t.contains("data") || !t.contains("folds") || t.value("data", "") != canonical(folder))
      continue;
    DataSelection recorded;
    recorded.folder = folder;
    recorded.split = t.value("split", recorded.split);
    recorded.folds = t.value("folds", recorded.folds);
    recorded.fold = t.value("fold", recorded.fold);
    recorded.fold_seed = t.value("fold_seed", recorded.fold_seed);
    recorded.val_split = t.value("val_split", std::string());
    recorded.labels = t.value("labels", recorded.labels);
    recorded.malignant_classes = t.value("malignant_classes", std::string());
    std::vector<SlideImage> train, validation;
    try {
      select_images(recorded, &train, &validation);
    } catch (const Error&) {
      continue;  // the folder no longer holds that selection: nothing to compare with
    }
    for (const auto& im : train) trained_on.insert(im.name);
  }
  int count = 0;
  for (const auto& im : images) count += int(trained_on.count(im.name));
  return count;
}

// Every file `eval -o X.json` writes: X.json, X.images.csv, X.crops.csv and
// the figures (X.roc.*, X.confusion.*, X.reliability.*: PNG, SVG and their
// gnuplot scripts).
std::vector<std::string> eval_output_files(const std::string& output, bool figures) {
  if (output.empty()) return {};
  std::string stem = output;
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".json") == 0)
    stem.resize(stem.size() - 5);
  std::vector<std::string> files = {output, stem + ".images.csv", stem + ".crops.csv"};
  if (figures)
    for (const char* figure :
         {".roc", ".confusion", ".classes.confusion", ".classes.roc", ".reliability"})
      for (const char* ext : {".png", ".svg", ".png.gp", ".svg.gp"})
        files.push_back(stem + figure + ext);
  return files;
}

// The expected calibration errors, before and after the models' temperatures
// where they have one.
void print_calibration(const nlohmann::json& c, bool applied, bool on_fitting_images) {
  const auto ece = [](const nlohmann::json& level, const char* name) {
    return level[name]["ece"].get<double>();
  };
  std::printf("calibration: expected calibration error %.3f per crop, %.3f per image (%d bins)",
              ece(c, "per_crop"), ece(c, "per_image"), c["per_crop"]["bins"].get<int>());
  if (c.contains("uncalibrated")) {
    std::string t;
    bool capped = false;  // any member's (temperature_capped)
    for (const auto& v : c["temperatures"]) {
      char one[32];
      std::snprintf(one, sizeof one, "%s%.2f", t.empty() ? "" : ", ", v.get<double>());
      t += one;
      capped = capped || temperature_capped(v.get<double>());
    }
    if (capped) t += ", capped: the model's scores barely separate the classes";
    if (c.contains("within_temperatures")) {
      t += "; within benign and within malignant ";
      for (size_t i = 0; i < c["within_temperatures"].size(); ++i) {
        char one[32];
        std::snprintf(one, sizeof one, "%s%.2f", i ? ", " : "",
                      c["within_temperatures"][i].get<double>());
        t += one;
      }
    }
    std::printf("; %.3f and %.3f before temperature scaling (T = %s)\n",
                ece(c["uncalibrated"], "per_crop"), ece(c["uncalibrated"], "per_image"), t.c_str());
    if (on_fitting_images)
      std::printf(
          "(the temperature was fitted on these held-out images, so its error here is "
          "optimistic: judge calibration on images no step of training saw)\n");
  } else {
    std::printf(applied ? " (T = 1: temperature scaling left the model as it was, or it was "
                          "trained without validation images; its recipe's \"calibration\" says "
                          "why)\n"
                        : " (--no-calibration: raw probabilities)\n");
  }
  if (!c.contains("classes")) return;
  const auto& k = c["classes"];
  std::printf(
      "calibration of the classes (top probability against fraction right): %.3f per "
      "crop, %.3f per image",
      ece(k, "per_crop"), ece(k, "per_image"));
  if (k.contains("uncalibrated"))
    std::printf("; %.3f and %.3f before temperature scaling", ece(k["uncalibrated"], "per_crop"),
                ece(k["uncalibrated"], "per_image"));
  std::printf("\n");
}

// More than two classes: accuracy, macro-F1 and quadratic kappa per level,
// and each class's precision, recall and F1 per image.
void print_class_metrics(const EvalReport& r) {
  if (r.class_names.size() <= 2) return;
  std::printf("%zu classes (argmax of the class probabilities):\n", r.class_names.size());
  const auto range = [](const nlohmann::json& v) {
    char text[32] = "n/a";
    if (v.is_array())
      std::snprintf(text, sizeof text, "%.3f-%.3f", v[0].get<double>(), v[1].get<double>());
    return std::string(text);
  };
  for (const auto& [level, m] :
       {std::pair<const char*, const ClassMetrics*>{"crop", &r.class_per_crop},
        {"image", &r.class_per_image},
        {"patient", &r.class_per_patient}}) {
    std::printf("%-8s n=%-5d acc %.3f  balanced %.3f  macro-F1 %.3f  kappa %.3f\n", level, m->count,
                m->accuracy, m->balanced_accuracy, m->macro_f1, m->quadratic_kappa);
    if (r.intervals.is_null() || !r.intervals.contains("classes")) continue;
    const auto& i = r.intervals["classes"]["per_" + std::string(level)];
    std::printf("%-8s 95%% CI  acc %s  macro-F1 %s  kappa %s\n", "", range(i["accuracy"]).c_str(),
                range(i["macro_f1"]).c_str(), range(i["quadratic_kappa"]).c_str());
  }
  const ClassMetrics& m = r.class_per_image;
  const auto number = [](double x) {
    char text[16] = "  -  ";  // undefined: a class never predicted, or absent
    if (std::isfinite(x)) std::snprintf(text, sizeof text, "%.3f", x);
    return std::string(text);
  };
  for (size_t c = 0; c < r.class_names.size(); ++c)
    std::printf("  %-36s images %-3d precision %s  recall %s  F1 %s  AUC %s\n",
                r.class_names[c].c_str(), m.support[c], number(m.precision[c]).c_str(),
                number(m.recall[c]).c_str(), number(m.f1[c]).c_str(), number(m.auc[c]).c_str());
}

struct EvalArgs {
  DataSelection data;
  std::vector<std::string> models;
  std::string output, device = "cpu";
  int crops_per_image = 8, batch = 50, threads = 0;
  uint64_t seed = 7920;
  bool tta = false, figures = true, calibrated = true;
  int bootstrap = 1000;
};

// By default eval scores what the models did not train on: their own
// held-out fold or validation split, taken from their recipe. Anything else
// takes an explicit choice; returns whether the user made one.
bool choose_evaluated_images(const CLI::App& cmd, EvalArgs& a,
                             const std::vector<ModelFile>& models) {
  const std::string& model_name = a.models.front();
  bool chosen = false;
  for (const char* flag : {"--split", "--folds", "--fold", "--val-split", "--fold-seed"})
    chosen = chosen || cmd.count(flag) > 0;
  // --folds/--fold without --fold-seed: folds of the partition the model knows.
  const nlohmann::json& t = models.front().trained;
  if (chosen && cmd.count("--fold-seed") == 0)
    a.data.fold_seed = t.value("fold_seed", a.data.fold_seed);
  if (chosen || !t.contains("folds")) return chosen;
  for (const ModelFile& other : models)
    for (const char* key : {"data", "split", "folds", "fold", "fold_seed", "val_split"})
      require(other.trained.value(key, nlohmann::json()) == t.value(key, nlohmann::json()),
              "--model: the models were trained on different images ('" + std::string(key) +
                  "' differs), so none is held out from all: choose what to evaluate "
                  "with --split, --folds/--fold or --val-split");
  a.data.split = t.value("split", a.data.split);
  a.data.folds = t.value("folds", a.data.folds);
  a.data.fold = t.value("fold", a.data.fold);
  a.data.fold_seed = t.value("fold_seed", a.data.fold_seed);
  a.data.val_split = t.value("val_split", std::string());
  require(a.data.folds > 0 || !a.data.val_split.empty(),
          model_name + " was trained on every image of split '" + a.data.split +
              "' (--folds 0): say what to evaluate with --split, --val-split or --folds "
              "(evaluating training images takes an explicit choice)");
  if (!world().root()) {
  } else if (a.data.val_split.empty())
    std::printf("evaluating the model's held-out fold %d of %d (fold seed %llu)\n", a.data.fold,
                a.data.folds, (unsigned long long)a.data.fold_seed);
  else
    std::printf("evaluating the model's validation split '%s'\n", a.data.val_split.c_str());
  return chosen;
}

// The crops of every evaluated image, cut as the model was trained on them.
CropOptions eval_crops(const ModelFile& model, const std::vector<SlideImage>& images,
                       const LabelScheme& labels, const EvalArgs& a) {
  CropOptions crops;
  crops.seed = a.seed;
  crops.whole_image = model.crop == "whole";
  if (!crops.whole_image)
    std::sscanf(model.crop.c_str(), "%dx%d", &crops.crop_width, &crops.crop_height);
  crops.distinct_positions = true;
  crops.stain_target = model.stain_target;
  crops.stain_recipe = model.stain_recipe();
  crops.max_background = model.trained.value("max_background", 1.0f);
  crops.classes = labels.count();
  crops.class_crops.assign(size_t(labels.count()), 0);
  for (const auto& im : images) crops.class_crops[size_t(im.label)] += a.crops_per_image;
  return crops;
}

// Accuracy, balanced accuracy and AUC per crop, image and patient, with
// their bootstrap intervals when there are any.
void print_levels(const EvalReport& report, int bootstrap) {
  auto range = [](const nlohmann::json& v) {
    char text[32] = "n/a";
    if (v.is_array())
      std::snprintf(text, sizeof text, "%.3f-%.3f", v[0].get<double>(), v[1].get<double>());
    return std::string(text);
  };
  auto line = [&](const char* level, const Metrics& m) {
    std::printf("%-8s n=%-5d acc %.3f  balanced %.3f  auc %.3f  [tn %d fp %d fn %d tp %d]\n", level,
                m.count, m.accuracy, m.balanced_accuracy, m.auc, m.tn, m.fp, m.fn, m.tp);
    if (report.intervals.is_null()) return;
    const auto& i = report.intervals["per_" + std::string(level)];
    std::printf("%-8s 95%% CI  acc %s  balanced %s  auc %s\n", "", range(i["accuracy"]).c_str(),
                range(i["balanced_accuracy"]).c_str(), range(i["auc"]).c_str());
  };
  line("crop", report.per_crop);
  line("image", report.per_image);
  line("patient", report.per_patient);
  if (!report.intervals.is_null())
    std::printf("(95%% intervals: patient bootstrap, %d resamples)\n", bootstrap);
}

// -o: the report as JSON, the per-image and per-crop tables, the figures.
// Each file is atomic, and the JSON is written last: an evaluation that fails
// on the way (gnuplot, a full disk) leaves the earlier JSON, never a new one
// beside stale figures.
void write_eval_outputs(const EvalArgs& a, const EvalReport& report, const ExampleSet& set,
                        size_t model_count, size_t image_count, int seen_in_training) {
  const std::string& model_name = a.models.front();
  nlohmann::json j = report.to_json();
  j["model"] = a.models.size() == 1 ? nlohmann::json(model_name) : nlohmann::json(a.models);
  j["images"] = image_count;
  j["crops_per_image"] = a.crops_per_image;
  j["training_images_evaluated"] = seen_in_training;
  std::string stem = a.output;
  if (stem.size() > 5 && stem.compare(stem.size() - 5, 5, ".json") == 0)
    stem.resize(stem.size() - 5);
  write_file_atomically(stem + ".images.csv", report.images_csv());
  write_file_atomically(stem + ".crops.csv", report.crops_csv(set));
  std::string figures;
  if (a.figures) {
    write_eval_figures(
        report, stem,
        std::filesystem::path(model_name).filename().string() +
            (model_count > 1 ? " (" + std::to_string(model_count) + " models)" : std::string()) +
            " on " + describe_evaluated(a.data) + ", " + std::to_string(image_count) + " images" +
            (a.tta ? ", TTA" : ""));
    const std::string kinds = gnuplot_on_path() ? ".png/.svg" : ".png.gp/.svg.gp";
    figures = ", " + stem + ".roc" + kinds + ", " + stem + ".confusion" + kinds + ", " +
              (report.class_names.size() > 2 ? stem + ".classes.confusion" + kinds + ", " + stem +
                                                   ".classes.roc" + kinds + ", "
                                             : std::string()) +
              stem + ".reliability" + kinds;
  }
  write_file_atomically(a.output, j.dump(2) + "\n");
  std::printf("files: %s, %s.images.csv, %s.crops.csv%s\n", a.output.c_str(), stem.c_str(),
              stem.c_str(), figures.c_str());
}

// Checked writable and not one of the inputs before any work; the folder is
// removed again if this evaluation made it and fails before writing there.
std::unique_ptr<OutputFolder> prepare_eval_outputs(const EvalArgs& a,
                                                   const std::vector<std::string>& outputs) {
  std::vector<NamedInput> inputs;
  for (const auto& m : a.models) inputs.push_back({m, "the model"});
  inputs.push_back(
      {(std::filesystem::path(a.data.folder) / "Grade.csv").string(), "the dataset's"});
  for (const auto& file : outputs) refuse_overwriting_inputs("--output", file, inputs);
  if (outputs.empty()) return nullptr;
  // Said before the evaluation (a GPU node's image often lacks gnuplot): the
  // numbers do not need the figures, whose data and scripts are kept.
  if (a.figures)
    figures_drawable("eval",
                     "-o's ROC, confusion and reliability figures are written as "
                     "their data and scripts (or --no-figures)");
  auto folder = std::make_unique<OutputFolder>(
      std::filesystem::absolute(outputs.front()).parent_path().string());
  prepare_output_file("--output", outputs.front());
  return folder;
}

}  // namespace

Runner add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval", "accuracy, balanced accuracy, ROC AUC and confusion per crop, image and patient");
  auto a = std::make_shared<EvalArgs>();
  add_data_options(*cmd, a->data);
  cmd->add_option("--model,-m", a->models,
                  "model, checkpoint or ensemble (safetensors); several -m average their "
                  "predictions (they must read images alike: same network, input, crop and "
                  "stain normalisation)")
      ->required()
      ->allow_extra_args(false);  // one file per -m
  cmd->add_option("--crops-per-image", a->crops_per_image, "crops evaluated per image")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU cores (0 = all)")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--seed", a->seed, "seed of the crop positions")->capture_default_str();
  cmd->add_flag("--tta,!--no-tta", a->tta,
                "test-time augmentation: average each crop over its 8 flips/rotations "
                "(default: what the model's recipe recorded)");
  cmd->add_option("--output,-o", a->output,
                  "write the report as JSON here, and beside it (same name without .json) "
                  "per-image predictions (.images.csv), ROC curves (.roc.png/.svg) and "
                  "confusion matrices (.confusion.png/.svg)");
  cmd->add_flag("!--no-figures", a->figures, "with -o: skip the ROC and confusion figures");
  cmd->add_option("--bootstrap", a->bootstrap,
                  "patient-level bootstrap resamples for the 95% intervals of every metric (0: "
                  "none)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  cmd->add_flag("!--no-calibration", a->calibrated,
                "ignore the models' temperatures (fitted on their validation images at the end "
                "of training) and score their raw probabilities");
  return [a, cmd] {
    const int threads = bound_cores(a->threads);
    const std::vector<std::string> outputs = eval_output_files(a->output, a->figures);
    const std::unique_ptr<OutputFolder> folder = prepare_eval_outputs(*a, outputs);
    const std::vector<ModelFile> models = load_ensemble(a->models);
    const ModelFile& model = models.front();  // the recipe and data selection come from it
    const std::string model_name = a->models.front();
    // The evaluation the model's recipe asks for, unless told otherwise.
    a->tta = resolve_tta(*cmd, a->tta, models, a->calibrated);
    if (cmd->count("--crops-per-image") == 0)
      a->crops_per_image = model.trained.value("eval_crops", a->crops_per_image);
    const bool chosen = choose_evaluated_images(*cmd, *a, models);
    // The images labelled as the model was trained: its scheme's classes.
    a->data.labels = model.labels.name;
    a->data.malignant_classes = model.trained.value("malignant_classes", std::string());
    std::vector<SlideImage> train, validation;
    std::vector<std::string> notes;
    const LabelScheme labels = select_images(a->data, &train, &validation, &notes);
    if (world().root())
      for (const std::string& note : notes) std::fprintf(stderr, "note: %s\n", note.c_str());
    require(labels.classes == model.labels.classes,
            a->data.folder + ": its classes ('" + labels.column + "') differ from the " +
                std::to_string(model.labels.count()) + " classes " + model_name +
                " was trained to tell apart");
    if (labels.from_class_folders()) refuse_output_in_class_folders(a->output, train, validation);
    // Without a fold (--folds 0) the whole split is evaluated.
    const auto& images = a->data.folds == 0 && a->data.val_split.empty() ? train : validation;
    for (const auto& file : outputs)
      for (const auto& im : images)
        refuse_overwriting_inputs("--output", file, {{im.path, "the input image"}});
    const int seen_in_training = count_training_images(models, a->data.folder, images);
    if (seen_in_training > 0 && world().root())
      std::fprintf(stderr,
                   "warning: %d of the %zu images evaluated were used to train %s: these "
                   "figures are not held-out\n",
                   seen_in_training, images.size(),
                   models.size() > 1 ? "the models" : model_name.c_str());
    const ExampleSet set = build_examples(images, eval_crops(model, images, labels, *a),
                                          model.width, model.height, threads);
    if (set.repeated_positions > 0 && world().root())
      std::fprintf(stderr, "note: %s\n", repeated_positions_note(set).c_str());
    const PredictionSteps steps =
        compile_for_prediction(select_device(a->device), models, a->batch);
    // Under mpirun each process predicts its share; rank 0 reports.
    EvalOptions eval_options;
    eval_options.tta = a->tta;
    eval_options.bootstrap = a->bootstrap;
    eval_options.calibration = true;
    eval_options.bootstrap_seed = a->seed;
    eval_options.labels = model.labels;
    eval_options.loader_workers = loader_workers_for(a->device == "cpu", threads);
    if (a->calibrated) eval_options.temperings = temperings_of(models);
    const EvalReport report =
        evaluate(steps.members, set, model.normalization, &world(), eval_options);
    if (!world().root()) return 0;
    print_levels(report, a->bootstrap);
    print_class_metrics(report);
    print_calibration(report.calibration, a->calibrated, !chosen);
    if (models.size() > 1) std::printf("(mean of %zu models)\n", models.size());
    if (!a->output.empty())
      write_eval_outputs(*a, report, set, models.size(), images.size(), seen_in_training);
    return 0;
  };
}

}  // namespace histocnn::cli
