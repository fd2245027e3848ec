#include "cli/presets.h"

#include "core/error.h"

namespace histocnn::cli {

namespace {

Preset accurate() {
  return {"accurate",
          "batch-norm + global-pooling network on stain-normalised 400 px crops at 64 px, strong "
          "HED augmentation, AdamW + cosine; eval with TTA over 16 crops",
          {{"--size", "64"},
           {"--crop", "400"},
           {"--epochs", "30"},
           {"--flips", ""},
           {"--rotations", ""},
           {"--stain-normalize", "macenko-residual"},
           {"--hed-jitter", "0.2"},  // HED-strong (Tellez 2019); docs/results/glas-cv.md
           {"--max-background", "0.5"},
           {"--lr-schedule", "cosine"},
           {"--weight-decay", "0.05"},
           {"--eval-tta", ""},
           {"--eval-crops", "16"}},
          // 4 conv blocks (same padding, batch norm, 2x2 max-pool), global average
          // pooling, then the paper's head: 250k parameters, 0.30 GFLOP per example.
          // Its last layer gets one output per class of --labels.
          "conv 32 kernel=3 pool=2 pad=same bn\nconv 64 kernel=3 pool=2 pad=same bn\n"
          "conv 128 kernel=3 pool=2 pad=same bn\nconv 128 kernel=3 pool=2 pad=same bn\ngap\n"
          "dense 64\ndropout 0.5\ndense 2\n"};
}

// The five GlaS grades with the accurate recipe, its crops balanced over the
// grades, and the loss smoothed toward the neighbouring grades (two seeds:
// quadratic kappa 0.82-0.84 -> 0.86, benign/malignant image accuracy 0.94
// -> 0.97); the ablation behind it: docs/results/glas-grade-cv.md.
Preset grade() {
  Preset p = accurate();
  p.name = "grade";
  p.summary =
      "the five Sirinukunwattana grades (--labels grade5) with the accurate recipe and an "
      "ordinal loss (label smoothing 0.2 toward the neighbouring grades)";
  p.flags.insert(
      p.flags.begin(),
      {{"--labels", "grade5"}, {"--label-smoothing", "0.2"}, {"--smooth-to", "neighbours"}});
  return p;
}

}  // namespace

const std::vector<Preset>& presets() {
  static const std::vector<Preset> all = {
      {"paper", "the paper's network and protocol (the defaults)", {}, ""}, accurate(), grade()};
  return all;
}

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const auto& p : presets()) {
    if (p.name == name) return p;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  fail("--preset: unknown preset '" + name + "' (" + names + ")");
}

std::string describe(const Preset& preset) {
  std::string text;
  for (const auto& [flag, value] : preset.flags)
    text += (text.empty() ? "" : " ") + flag + (value.empty() ? "" : " " + value);
  if (!preset.model_spec.empty()) {
    std::string spec = preset.model_spec;
    while (!spec.empty() && spec.back() == '\n') spec.pop_back();
    for (size_t at; (at = spec.find('\n')) != std::string::npos;) spec.replace(at, 1, "; ");
    text += "\n    network (unless --model): " + spec + " (its last layer: one output per class)";
  }
  return text.empty() ? "(the defaults)" : text;
}

std::vector<std::string> apply_preset(CLI::App& cmd, const Preset& preset) {
  std::vector<std::string> applied;
  for (const auto& [flag, value] : preset.flags) {
    CLI::Option* option = cmd.get_option(flag);  // throws on a typo in the table
    if (option->count() > 0) continue;           // given explicitly: the user's value wins
    option->add_result(value.empty() ? std::string("true") : value);
    option->run_callback();
    applied.push_back(flag);
  }
  return applied;
}

}  // namespace histocnn::cli
