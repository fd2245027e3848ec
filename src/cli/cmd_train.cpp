#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/presets.h"
#include "core/atomic_file.h"
#include "data/stain.h"
#include "train/ensemble.h"
#include "train/run_training.h"
#include "train/training_data.h"

namespace histocnn::cli {

namespace {

// The flags train reads itself before they become TrainOptions.
struct TrainFlags {
  std::string size = "64";
  std::string model;
  CropFlags crop;
  bool no_progress = false;
  std::string preset = "paper";
};

// Each adds one section of `histocnn train --help` (CLI11 prints the
// options by group, in the order the groups first appear).
void add_run_options(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags* f) {
  cmd->option_defaults()->group("Run");
  std::string preset_help = "recipe whose settings apply where no flag is given:";
  for (const auto& p : presets())
    preset_help += "\n  " + p.name + ": " + p.summary + "\n    = " + describe(p);
  cmd->add_option("--preset", f->preset, preset_help)->capture_default_str();
  cmd->add_option("--output,-o", o->output, "output folder (checkpoint, model, metrics)")
      ->required();
  cmd->add_flag("--resume", o->resume,
                "continue from <output>/checkpoint.safetensors (settings must match its own; "
                "without a checkpoint: starts from scratch and says so)");
  cmd->add_flag("--force", o->force,
                "start over in an output folder that already holds a run (its files are replaced)");
  cmd->add_flag("!--no-checkpoint", o->checkpoints,
                "write no checkpoint.safetensors (the model and metrics only; the run cannot be "
                "resumed): what the study's timing runs use");
  cmd->add_flag("--force-resume", o->force_resume,
                "with --resume: continue even where settings differ from the checkpoint's");
  cmd->add_option("--init", o->init, "start from these weights (safetensors)");
  cmd->add_option("--seed", o->seed, "seed of initialisation, order and dropout")
      ->capture_default_str();
  cmd->add_option("--ensemble", o->ensemble,
                  "train this many networks alike with seeds seed, seed+1, ... (in member1/, "
                  "member2/, ...) and write model.safetensors as their ensemble: eval and "
                  "predict average the members and report how much they disagree")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--no-progress", f->no_progress, "no progress bar");
  cmd->add_option("--export-examples", o->export_examples,
                  "write the training crops to this file and stop (used by the study for PyTorch)");
}

void add_data_group(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags*) {
  cmd->option_defaults()->group("Data");
  add_data_options(*cmd, o->data);
  cmd->add_option("--labels", o->data.labels,
                  "what to learn: glas (benign/malignant), grade5 (the five Sirinukunwattana "
                  "grades: healthy, adenomatous, moderately, moderately-to-poorly, poorly "
                  "differentiated), or a Grade.csv column (NAME, or NAME=a,b,c to order its "
                  "classes); class-folder data (DIR/<class>/*.png): folders (every folder a "
                  "class) or folders=a,b,c (these, in this order)")
      ->capture_default_str();
  cmd->add_option("--malignant-classes", o->data.malignant_classes,
                  "class-folder data: the classes that are malignant, comma-separated (default: "
                  "by name, e.g. tumour, carcinoma, TUM, colon_aca); eval, predict and slide "
                  "report P(malignant) as their sum");
  cmd->add_option("--image-mpp", o->image_mpp,
                  "microns per pixel of the training images (GlaS: 0.62005 at 20x); the model "
                  "records its physical scale, which `histocnn slide` reads tiles at")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 100.0));
}

void add_crop_group(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags* f) {
  cmd->option_defaults()->group("Crops");
  add_crop_options(*cmd, o->crops, f->crop);
  cmd->add_option("--max-background", o->crops.max_background,
                  "redraw crops with more background (white glass) than this fraction (1 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  cmd->add_flag("--fresh-crops", o->crops.fresh_each_epoch,
                "draw new crop positions every epoch (images kept at the crop's scale)");
  cmd->add_option("--val-crops", o->val_crops_per_image, "validation crops per image")
      ->capture_default_str();
  // A whole image is one example: crop flags would be ignored without a word.
  CLI::Option* whole = cmd->get_option("--whole-image");
  for (const char* crop_flag :
       {"--crop", "--crops-benign", "--crops-malignant", "--crops-per-class", "--max-background",
        "--fresh-crops", "--val-crops"})
    whole->excludes(cmd->get_option(crop_flag));
}

void add_network_options(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags* f) {
  cmd->option_defaults()->group("Network");
  cmd->add_option("--size", f->size, "network input size, N or WxH (paper: 32..200)")
      ->capture_default_str();
  cmd->add_option("--model", f->model,
                  "model spec file (default: the paper's network, its last layer one output per "
                  "class of --labels)");
  cmd->add_flag("!--no-normalize", o->normalize,
                "feed raw pixels / 255 (the paper) instead of per-channel standardised input");
}

void add_optimisation_options(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags*) {
  cmd->option_defaults()->group("Optimisation");
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "epochs")->capture_default_str();
  cmd->add_option("--lr", o->adam.learning_rate, "Adam learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", o->adam.weight_decay,
                  "decoupled weight decay (AdamW, as torch.optim.AdamW; 0 = Adam)")
      ->capture_default_str();
  cmd->add_option("--beta1", o->adam.beta1, "Adam beta1")->capture_default_str();
  cmd->add_option("--beta2", o->adam.beta2, "Adam beta2")->capture_default_str();
  cmd->add_option("--eps", o->adam.epsilon, "Adam epsilon")->capture_default_str();
  add_label_smoothing_options(*cmd, o->label_smoothing);  // range: validate_training_options
  cmd->add_option("--lr-schedule", o->schedule.kind, "constant, cosine or step")
      ->capture_default_str()
      ->check(CLI::IsMember({"constant", "cosine", "step"}));
  cmd->add_option("--warmup-epochs", o->schedule.warmup_epochs,
                  "linear learning-rate warm-up over this many epochs")
      ->capture_default_str();
  cmd->add_option("--lr-min-fraction", o->schedule.min_fraction,
                  "cosine: final learning rate as a fraction of --lr")
      ->capture_default_str();
  cmd->add_option("--lr-step-epochs", o->schedule.step_epochs, "step: epochs between decays")
      ->capture_default_str();
  cmd->add_option("--lr-gamma", o->schedule.gamma, "step: factor of each decay")
      ->capture_default_str();
}

void add_augmentation_options(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags*) {
  cmd->option_defaults()->group("Augmentation and stain");
  cmd->add_flag("--flips", o->augment.flips, "augment: random horizontal/vertical flips");
  cmd->add_flag("--rotations", o->augment.rotations, "augment: random 90-degree rotations");
  cmd->add_option("--stain-jitter", o->augment.stain_jitter,
                  "augment: stain jitter strength (e.g. 0.05)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option(
         "--hed-jitter", o->augment.hed_jitter,
         "augment: HED stain scale/shift sigma (Tellez 2018; 0.05 light, 0.2 strong; 0 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0f, 1.0f));
  std::vector<std::string> stain_choices = {"none"};
  for (const auto& name : stain_recipe_names()) stain_choices.push_back(name);
  cmd->add_option("--stain-normalize", o->stain_normalize,
                  "none, macenko (normalise every image to the training images' stains, "
                  "estimated by Macenko's angle extremes), vahadane (estimated by Vahadane's "
                  "sparse factorisation), or either with -residual (also keep what the two "
                  "stains do not explain)")
      ->capture_default_str()
      ->check(CLI::IsMember(stain_choices));
}

void add_selection_options(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags*) {
  cmd->option_defaults()->group("Validation and the saved model");
  cmd->add_option("--select-by", o->select_by,
                  "keep the best validation epoch as model.best.safetensors: none, image_auc, "
                  "image_accuracy, image_balanced_accuracy, crop_accuracy")
      ->capture_default_str();
  cmd->add_option("--early-stop", o->early_stop,
                  "stop after this many epochs without a better --select-by value (0 = never)")
      ->capture_default_str();
  cmd->add_flag("--eval-tta", o->eval_tta,
                "record in the model that eval and predict should use test-time augmentation");
  cmd->add_flag("!--no-calibration", o->calibrate,
                "fit no temperature on the validation images (eval, predict and slide then "
                "give the network's raw probabilities)");
  cmd->add_option("--eval-crops", o->eval_crops,
                  "record in the model how many crops per image eval should average")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
}

void add_device_options(CLI::App* cmd, const std::shared_ptr<TrainOptions>& o, TrainFlags*) {
  cmd->option_defaults()->group("Device, memory and speed");
  cmd->add_option("--threads", o->threads, "CPU cores to use (0 = all)")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--allocator", o->memory.allocator,
                  "device memory: plan (one arena, default), pool, direct (a malloc per tensor), "
                  "async (cuda)");
  cmd->add_option(
      "--gpu-mem-pool", o->memory.gpu_mem_pool,
      "pool reserve like Theano's lib.cnmem: 0 off, (0,1] fraction of GPU memory, >1 MB");
  cmd->add_option("--gpu-mem-limit", o->memory_limit,
                  "emulate a device with this much memory, e.g. 4GB (the paper's GTX-980)");
  cmd->add_option("--allocation-log", o->allocation_log,
                  "write every allocation and free to this CSV file (replayable)");
  cmd->add_option("--precision", o->precision,
                  "fp32; bf16 (bf16 activations, fp32 master weights, Adam and loss) on CPUs "
                  "with AVX512-BF16 or AMX and on cuda (conv blocks in bf16, no batch norm); "
                  "tf32 on cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  cmd->add_option_function<std::string>(
         "--denormals", [o](const std::string& v) { o->flush_denormals = v == "flush"; },
         "cpu: flush (treat floats below 1.2e-38 as zero: a converged network's epochs stay "
         "fast) or keep (IEEE gradual underflow, PyTorch's default; up to 4x slower epochs)")
      ->default_str("flush")
      ->check(CLI::IsMember({"flush", "keep"}));
  cmd->add_option_function<std::string>(
         "--cpu-conv", [o](const std::string& v) { o->winograd = v == "winograd"; },
         "cpu: 3x3 convolutions by Winograd F(4x4,3x3) where it pays (fp32: oneDNN's on AVX-512, "
         "the later blocks' forward ours on AVX-512 or AVX2; last-bit differences) or all direct")
      ->default_str("winograd")
      ->check(CLI::IsMember({"winograd", "direct"}));
  cmd->add_flag("--cudnn-benchmark", o->cudnn_benchmark,
                "cuda: time the convolution algorithms instead of trusting cuDNN's heuristics");
  cmd->add_flag("--cuda-graphs", o->cuda_graphs,
                "cuda: capture the training step once and replay it");
  cmd->add_flag("--cudnn-graph", o->cudnn_graph,
                "cuda: convolutions through cuDNN's graph API where it offers an allowed engine "
                "(else the legacy API; metrics.json says which)");
  cmd->add_flag("--channels-last", o->channels_last,
                "cuda: the conv blocks' maps channels last (NHWC) and the filters KRSC, what "
                "cuDNN's tensor-core kernels read without transposing");
  cmd->add_flag("!--no-selftest", o->selftest, "cuda: skip the quick self-test before training");
  cmd->add_flag("--profile-layers", o->profile_layers,
                "time every layer's forward and backward (metrics.json profile.layer_seconds); "
                "cuda: CUDA events per operation, the step run without graphs");
}
}  // namespace

Runner add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train the CNN on a GlaS-layout folder");
  auto o = std::make_shared<TrainOptions>();
  auto f = std::make_shared<TrainFlags>();
  for (auto* add : {add_run_options, add_data_group, add_crop_group, add_network_options,
                    add_optimisation_options, add_augmentation_options, add_selection_options,
                    add_device_options})
    add(cmd, o, f.get());
  return [o, f, cmd] {
    const Preset& recipe = find_preset(f->preset);
    apply_preset(*cmd, recipe);
    o->preset = recipe.name;
    if (f->model.empty() && !recipe.model_spec.empty())
      o->spec = parse_model_spec(recipe.model_spec, "--preset " + recipe.name);
    parse_size(f->size, "--size", &o->width, &o->height);
    apply_crop_flags(f->crop, o->crops);
    if (!f->model.empty())
      o->spec = parse_model_spec(read_file(f->model, size_t(1) << 20), f->model);
    else  // the built-in networks end in one output per class
      o->spec = with_classes(o->spec, label_scheme_of(o->data).count());
    o->progress = !f->no_progress;
    o->comm = &world();
    o->log = [](const std::string& line) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    };
    if (o->ensemble > 1)
      train_ensemble(*o);
    else
      run_training(*o);
    return 0;
  };
}

}  // namespace histocnn::cli
