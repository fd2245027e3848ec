#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "train/trainer.h"

namespace histocnn::cli {

Runner add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train the CNN on a GlaS-layout folder");
  auto o = std::make_shared<TrainOptions>();
  auto size = std::make_shared<std::string>("64");
  auto model = std::make_shared<std::string>();
  auto crop = std::make_shared<CropFlags>();
  auto no_progress = std::make_shared<bool>(false);
  add_data_options(*cmd, o->data);
  add_crop_options(*cmd, o->crops, *crop);
  cmd->add_option("--size", *size, "network input size, N or WxH (paper: 32..200)")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "batch size")->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "epochs")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU cores to use (0 = all)")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--allocator", o->memory.allocator, "CUDA memory: direct, pool, async, plan");
  cmd->add_option("--gpu-mem-pool", o->memory.gpu_mem_pool,
                  "CUDA pool like Theano's lib.cnmem: 0 off, (0,1] fraction of memory, >1 MB");
  cmd->add_option("--seed", o->seed, "seed of initialisation, order and dropout")
      ->capture_default_str();
  cmd->add_option("--model", *model, "model spec file (default: the paper's network)");
  cmd->add_option("--output,-o", o->output, "output folder (checkpoint, model, metrics)")
      ->required();
  cmd->add_flag("--resume", o->resume, "continue from <output>/checkpoint.safetensors");
  cmd->add_option("--init", o->init, "start from these weights (safetensors)");
  cmd->add_option("--lr", o->adam.learning_rate, "Adam learning rate")->capture_default_str();
  cmd->add_option("--beta1", o->adam.beta1, "Adam beta1")->capture_default_str();
  cmd->add_option("--beta2", o->adam.beta2, "Adam beta2")->capture_default_str();
  cmd->add_option("--eps", o->adam.epsilon, "Adam epsilon")->capture_default_str();
  cmd->add_option("--val-crops", o->val_crops_per_image, "validation crops per image")
      ->capture_default_str();
  cmd->add_flag("--flips", o->augment.flips, "augment: random horizontal/vertical flips");
  cmd->add_flag("--rotations", o->augment.rotations, "augment: random 90-degree rotations");
  cmd->add_option("--stain-jitter", o->augment.stain_jitter,
                  "augment: stain jitter strength (e.g. 0.05)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_flag("--no-progress", *no_progress, "no progress bar");
  cmd->add_flag("!--no-normalize", o->normalize,
                "feed raw pixels / 255 (the paper) instead of per-channel standardised input");
  cmd->add_option("--export-examples", o->export_examples,
                  "write the training crops to this file and stop (used by the study for PyTorch)");
  return [o, size, model, crop, no_progress] {
    parse_size(*size, "--size", &o->width, &o->height);
    apply_crop_flags(*crop, o->crops);
    if (!model->empty()) o->spec = parse_model_spec(read_file(*model), *model);
    o->progress = !*no_progress;
    o->log = [](const std::string& line) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    };
    run_training(*o);
    return 0;
  };
}

}  // namespace histocnn::cli
