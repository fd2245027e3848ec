#include <cstdio>

#include "cli/commands.h"
#include "data/synth.h"

namespace histocnn::cli {

Runner add_synth(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("synth", "write a synthetic GlaS-like dataset (Grade.csv + images)");
  auto options = std::make_shared<SynthOptions>();
  auto folder = std::make_shared<std::string>();
  cmd->add_option("--output,-o", *folder, "folder to write")->required();
  cmd->add_option("--images", options->images, "number of images (half benign, half malignant)")
      ->capture_default_str();
  cmd->add_option("--per-patient", options->images_per_patient, "images per patient")
      ->capture_default_str();
  cmd->add_option("--width", options->width, "image width")->capture_default_str();
  cmd->add_option("--height", options->height, "image height")->capture_default_str();
  cmd->add_option("--prefix", options->prefix, "name prefix (train, testA, testB)")
      ->capture_default_str();
  cmd->add_option("--format", options->format, "png, bmp or jpg")->capture_default_str();
  cmd->add_option("--seed", options->seed, "random seed")->capture_default_str();
  cmd->add_flag("--force", options->force,
                "write into a folder that already holds a dataset (its Grade.csv is replaced)");
  return [options, folder] {
    write_synthetic_dataset(*folder, *options);
    std::printf("wrote %d synthetic images and Grade.csv to %s\n", options->images,
                folder->c_str());
    return 0;
  };
}

}  // namespace histocnn::cli
