#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/paths.h"
#include "data/slide.h"
#include "data/synth.h"
#include "data/synth_slide.h"

namespace histocnn::cli {

Runner add_synth(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("synth", "write a synthetic GlaS-like dataset (Grade.csv + images)");
  auto options = std::make_shared<SynthOptions>();
  auto folder = std::make_shared<std::string>();
  auto slide = std::make_shared<SynthSlideOptions>();
  auto slide_path = std::make_shared<std::string>();
  auto slide_size = std::make_shared<std::string>("20000x15000");
  cmd->add_option("--output,-o", *folder, "folder to write (a dataset)");
  auto* slide_option = cmd->add_option(
      "--slide", *slide_path,
      "write one synthetic whole slide instead: a pyramidal TIFF of tissue pieces "
      "(--slide-tissue), for `histocnn slide`; a name ending in .svs "
      "gets Aperio's layout (thumbnail, 4x levels, AppMag and MPP in the description), "
      "one ending in .ome.tif or .ome.tiff OME-TIFF's (the scale in OME-XML, the pyramid in "
      "level 0's SubIFDs)");
  auto dicom = std::make_shared<bool>(false);
  cmd->add_option_function<std::string>(
         "--slide-format", [dicom](const std::string& v) { *dicom = v == "dicom"; },
         "tiff (a pyramidal TIFF, or Aperio's .svs by the name) or dicom (a DICOM "
         "whole-slide series: --slide names a new folder, one file per level)")
      ->default_str("tiff")
      ->check(CLI::IsMember({"tiff", "dicom"}))
      ->needs(slide_option);
  cmd->add_option("--slide-size", *slide_size, "the slide's WxH in pixels")->capture_default_str();
  cmd->add_option("--pieces", slide->pieces, "tissue pieces on the slide")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option_function<std::string>(
         "--slide-tissue",
         [slide](const std::string& v) {
           slide->tissue = v == "benign"      ? SlideTissue::benign
                           : v == "malignant" ? SlideTissue::malignant
                                              : SlideTissue::mixed;
         },
         "what the slide's tissue pieces hold: mixed (each half benign, half malignant), "
         "benign or malignant")
      ->default_str("mixed")
      ->check(CLI::IsMember({"mixed", "benign", "malignant"}))
      ->needs(slide_option);
  auto annotations = std::make_shared<std::string>();
  cmd->add_option("--slide-annotations", *annotations,
                  "also write the slide's malignant tissue as annotations, the truth for "
                  "`histocnn slide --annotations`: ASAP XML for a .xml file, else QuPath GeoJSON")
      ->needs(slide_option);
  cmd->add_flag("--pen-marks", slide->pen_marks,
                "circle each tissue piece with a marker: blue, green and red by turn")
      ->needs(slide_option);
  cmd->add_option("--out-of-focus", slide->out_of_focus_um,
                  "draw the right half of the slide out of focus: its tissue blurred by a "
                  "Gaussian of this many microns (sigma), what `slide --min-focus` finds")
      ->check(CLI::Range(0.0, 50.0))
      ->needs(slide_option);
  cmd->add_option("--mpp", slide->mpp, "the slide's microns per pixel")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 10.0));
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
                "write into a folder that already holds a dataset (its Grade.csv is replaced), "
                "or replace an existing --slide file");
  return [options, folder, slide, slide_path, slide_size, annotations, dicom] {
    require(folder->empty() != slide_path->empty(),
            "synth: give -o FOLDER (a dataset) or --slide FILE.tif (a whole slide)");
    if (!slide_path->empty()) {
      char tail = 0;
      long long w = 0, h = 0;
      require(std::sscanf(slide_size->c_str(), "%lldx%lld%c", &w, &h, &tail) == 2,
              "--slide-size " + *slide_size + ": not WxH");
      slide->width = w;
      slide->height = h;
      slide->seed = options->seed;
      if (std::filesystem::path(*slide_path).extension() == ".svs")
        slide->layout = SlideLayout::aperio;
      if (has_ome_tiff_name(*slide_path)) slide->layout = SlideLayout::ome;
      std::error_code ec;
      require(!*dicom || !std::filesystem::exists(*slide_path, ec),
              "--slide " + *slide_path + ": exists; a DICOM series is written into a new folder");
      require(!std::filesystem::exists(*slide_path, ec) ||
                  (options->force && std::filesystem::is_regular_file(*slide_path, ec)),
              "--slide " + *slide_path + ": the file exists; --force replaces it");
      require(annotations->empty() || !same_path(*annotations, *slide_path),
              "--slide-annotations " + *annotations + ": the slide's own file");
      require(annotations->empty() || !std::filesystem::exists(*annotations, ec) ||
                  (options->force && std::filesystem::is_regular_file(*annotations, ec)),
              "--slide-annotations " + *annotations + ": the file exists; --force replaces it");
      prepare_output_file("--slide", *slide_path);  // its folder made, known writable
      if (!annotations->empty()) prepare_output_file("--slide-annotations", *annotations);
      if (*dicom)
        write_synthetic_dicom_slide(*slide_path, *slide);
      else
        write_synthetic_slide(*slide_path, *slide);
      if (!annotations->empty()) write_synthetic_annotations(*annotations, *slide);
      const char* holds = slide->tissue == SlideTissue::benign ? "benign"
                          : slide->tissue == SlideTissue::malignant
                              ? "malignant"
                              : "each half benign, half malignant";
      std::printf(
          "wrote a %lldx%lld synthetic slide (%d tissue pieces, %s%s; %.3f um/pixel) to %s\n", w, h,
          slide->pieces, holds, slide->pen_marks ? ", circled in pen" : "", slide->mpp,
          slide_path->c_str());
      if (!annotations->empty())
        std::printf("wrote its malignant regions as %s annotations to %s\n",
                    std::filesystem::path(*annotations).extension() == ".xml" ? "ASAP XML"
                                                                              : "QuPath GeoJSON",
                    annotations->c_str());
      return 0;
    }
    write_synthetic_dataset(*folder, *options);
    std::printf("wrote %d synthetic images and Grade.csv to %s\n", options->images,
                folder->c_str());
    return 0;
  };
}

}  // namespace histocnn::cli
