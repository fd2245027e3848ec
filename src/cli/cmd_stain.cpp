#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/paths.h"
#include "data/image.h"
#include "data/stain.h"
#include "train/checkpoint.h"

namespace histocnn::cli {

Runner add_stain(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "stain", "H&E stain vectors of images, and the images normalised to a target");
  struct Args {
    std::vector<std::string> images;
    std::string model, reference, output, method;
    bool keep_residual = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("images", a->images, "image files")->required();
  cmd->add_option("--model,-m", a->model,
                  "normalise to the stain target stored in this model, as eval and predict "
                  "do (trained with --stain-normalize: its method, and its residual kept "
                  "when it says -residual)");
  cmd->add_option("--reference", a->reference, "normalise to this image's stains instead");
  cmd->add_option("--method", a->method,
                  "how stain vectors are estimated: macenko (the extreme angles of the "
                  "optical density) or vahadane (sparse non-negative factorisation); "
                  "default macenko, or the model's")
      ->check(CLI::IsMember({"macenko", "vahadane"}));
  cmd->add_flag("--keep-residual", a->keep_residual,
                "keep the optical density the two stains do not explain (-residual)");
  cmd->add_option("--output,-o", a->output,
                  "write the normalised images into this folder (as NAME.png)");
  return [a] {
    require(a->model.empty() || a->reference.empty(), "--model and --reference: give one target");
    std::optional<StainMatrix> target;
    StainRecipe recipe{StainMethod::macenko, a->keep_residual};
    if (!a->method.empty()) recipe.method = parse_stain_method(a->method, "--method");
    if (!a->model.empty()) {
      const ModelFile model = load_models(a->model).front();  // an ensemble's members share it
      target = model.stain_target;
      require(target.has_value(), a->model +
                                      ": the model was not trained with --stain-normalize "
                                      "(no stain target stored)");
      const StainRecipe own = model.stain_recipe();
      require(a->method.empty() || recipe.method == own.method,
              "--method: " + a->model + " normalises with " + stain_method_name(own.method) +
                  " (its stain target was estimated that way)");
      recipe = {own.method, own.keep_residual || a->keep_residual};
    } else if (!a->reference.empty()) {
      target = estimate_stains_with(recipe.method, load_image(a->reference), a->reference);
    }
    require(a->output.empty() || target.has_value(),
            "--output: needs a target (--model or --reference) to normalise to");
    // Where each normalised image goes, checked before any work: two inputs
    // may not share an output, and no output may replace an input.
    std::vector<std::string> outputs;
    if (!a->output.empty()) {
      std::vector<NamedInput> inputs;
      for (const auto& path : a->images) inputs.push_back({path, "the input image"});
      if (!a->reference.empty()) inputs.push_back({a->reference, "the reference image"});
      if (!a->model.empty()) inputs.push_back({a->model, "the model"});
      for (size_t i = 0; i < a->images.size(); ++i) {
        const std::string out =
            (std::filesystem::path(a->output) / std::filesystem::path(a->images[i]).stem())
                .string() +
            ".png";
        for (size_t j = 0; j < i; ++j)
          require(!same_path(out, outputs[j]),
                  "--output: " + a->images[j] + " and " + a->images[i] +
                      " would both be written to " + out +
                      " (same file name): normalise them into different folders");
        refuse_overwriting_inputs("--output", out, inputs);
        outputs.push_back(out);
      }
      if (!outputs.empty()) prepare_output_file("--output", outputs.front());
    }
    std::printf("image,h_r,h_g,h_b,e_r,e_g,e_b,max_h,max_e\n");
    auto row = [](const std::string& name, const StainMatrix& s) {
      std::printf("%s,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f\n", name.c_str(), s.he[0][0],
                  s.he[0][1], s.he[0][2], s.he[1][0], s.he[1][1], s.he[1][2],
                  s.max_concentration[0], s.max_concentration[1]);
    };
    if (target) row("(target)", *target);
    for (size_t i = 0; i < a->images.size(); ++i) {
      const std::string& path = a->images[i];
      const Image image = load_image(path);
      const StainMatrix own = estimate_stains_with(recipe.method, image, path);
      row(path, own);
      if (!outputs.empty())
        save_image(outputs[i], normalize_stains(image, own, *target, recipe.keep_residual));
    }
    return 0;
  };
}

}  // namespace histocnn::cli
