// Named recipes for `train --preset`: each is a list of flag values applied
// where the user did not give the flag, so explicit flags always win.
//   paper     the paper's setting, exactly the defaults (the study times it)
//   accurate  the recipe measured in docs/results/glas-cv.md
//   grade     the five GlaS grades with it (docs/results/glas-grade-cv.md)
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

namespace histocnn::cli {

struct Preset {
  std::string name, summary;
  std::vector<std::pair<std::string, std::string>> flags;  // (--flag, value); "" for a switch
  std::string model_spec;  // the network, when --model is not given ("" = the paper's)
};

const std::vector<Preset>& presets();
const Preset& find_preset(const std::string& name);  // throws naming --preset
// "--size 64 --crop 400 ..." for --help and the README.
std::string describe(const Preset& preset);
// Sets every preset flag the command line did not give; returns the flags set.
std::vector<std::string> apply_preset(CLI::App& cmd, const Preset& preset);

}  // namespace histocnn::cli
