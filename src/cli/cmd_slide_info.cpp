// `histocnn slide-info`: what `histocnn slide` will make of each slide, from
// the headers alone (slide/slide_info.h), so a cohort is checked in seconds
// before hours of scoring. Exit status 1 when a slide has a problem.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/slide_cohort.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "slide/slide_info.h"
#include "train/checkpoint.h"

namespace histocnn::cli {
namespace {

struct SlideInfoArgs {
  std::vector<std::string> files;
  std::string model, json;
  double mpp_model = 0;
  SlideInspection o;
};

// The model's scale and input, as `histocnn slide` takes them.
void take_model_scale(const SlideInfoArgs& a, SlideInspection* o) {
  if (a.model.empty()) {
    require(a.mpp_model == 0, "--mpp-model: give the model too (-m MODEL)");
    require(!o->tissue, "--tissue: give the model too (-m MODEL): tiles are at its scale");
    return;
  }
  const ModelFile model = load_model_file(a.model);
  o->model_mpp_x = a.mpp_model > 0 ? a.mpp_model : model.mpp_x;
  o->model_mpp_y = a.mpp_model > 0 ? a.mpp_model : model.mpp_y;
  o->net_width = model.width;
  o->net_height = model.height;
  require(o->model_mpp_x > 0 && o->model_mpp_y > 0,
          a.model +
              ": the model does not record the microns per pixel it was trained at; give "
              "--mpp-model");
}

int run_slide_info(SlideInfoArgs& a) {
  const SlideInputs inputs = expand_slide_folders(a.files, "slide-info");
  take_model_scale(a, &a.o);  // before --json's folder is made: a bad model leaves none
  if (!a.json.empty()) {
    std::vector<NamedInput> named;
    for (const std::string& s : inputs.slides) named.push_back({s, "a slide"});
    if (!a.model.empty()) named.push_back({a.model, "the model"});
    refuse_overwriting_inputs("--json", a.json, named);
    prepare_output_file("--json", a.json);
  }
  inputs.say_found();
  nlohmann::json all = nlohmann::json::array();
  size_t ready = 0;
  for (const std::string& slide : inputs.slides) {
    const SlideInfo info = inspect_slide(slide, a.o);
    std::fputs(slide_info_text(info).c_str(), stdout);
    ready += info.ready();
    all.push_back(slide_info_json(info));
  }
  const size_t count = inputs.slides.size();
  std::printf(
      "%zu %s: %zu ready for histocnn slide%s\n", count, count == 1 ? "slide" : "slides", ready,
      ready == count ? ""
                     : (", " + std::to_string(count - ready) + " with a problem (above)").c_str());
  if (!a.json.empty()) write_file_atomically(a.json, all.dump(1) + "\n");
  return ready == count ? 0 : 1;
}

}  // namespace

Runner add_slide_info(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "slide-info",
      "what `histocnn slide` will make of each slide, from its header alone: format, reader, "
      "size, pyramid, scale and, with -m, the tile grid; problems and slow reads flagged "
      "(exit status 1 when a slide has a problem)");
  auto a = std::make_shared<SlideInfoArgs>();
  cmd->add_option("slides", a->files,
                  "slides as `histocnn slide` takes them (a folder: every slide in it or below)")
      ->required();
  cmd->add_option("-m,--model", a->model, "a model: the tile grid at its scale");
  cmd->add_option("--mpp", a->o.mpp, "the slides' microns per pixel (default: as recorded)")
      ->check(CLI::Range(0.01, 100.0));
  cmd->add_option("--mpp-model", a->mpp_model,
                  "the model's microns per network pixel (default: as recorded)")
      ->check(CLI::Range(0.01, 1000.0));
  cmd->add_option_function<std::string>(
         "--reader",
         [a](const std::string& v) {
           a->o.reader = v == "openslide" ? SlideReader::openslide : SlideReader::automatic;
         },
         "auto or openslide, as `histocnn slide --reader`")
      ->check(CLI::IsMember({"auto", "openslide"}));
  cmd->add_flag("--tissue", a->o.tissue,
                "with -m: read each slide's thumbnail and count the tiles on tissue, as "
                "`histocnn slide` would find them with its defaults (a second or so a slide)");
  cmd->add_option("--json", a->json, "every slide's facts as a JSON array (written atomically)");
  return [a] { return run_slide_info(*a); };
}

}  // namespace histocnn::cli
