// `histocnn mil`: a slide-level attention MIL model (slide/mil_cohort.h)
// trained on a cohort's tile features with cross-validation, or applied to
// another cohort's.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "core/threads.h"
#include "data/slide_labels.h"
#include "slide/mil_cohort.h"
#include "slide/mil_outputs.h"
#include "slide/slide_evaluation.h"
#include "study/gnuplot.h"

namespace histocnn::cli {
namespace {
namespace fs = std::filesystem;

struct MilArgs {
  std::string cohort, output, labels_path, apply;
  bool tcga_labels = false;
  int folds = 5;
  double min_focus = 0;
  int bootstrap = 2000;
  int threads = 0;
  MilOptions mil;
};

void add_mil_options(CLI::App* cmd, MilArgs* a) {
  cmd->option_defaults()->group("Model and training");
  cmd->add_option("--folds", a->folds, "patient-grouped cross-validation folds")
      ->capture_default_str()
      ->check(CLI::Range(2, 100));
  cmd->add_option("--epochs", a->mil.epochs, "passes over the training slides")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--attention", a->mil.attention, "width of the attention branch")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--lr", a->mil.learning_rate, "Adam's learning rate")
      ->capture_default_str()
      ->check(CLI::Range(1e-8, 1.0));
  cmd->add_option("--weight-decay", a->mil.weight_decay, "AdamW's decoupled weight decay")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--max-tiles", a->mil.max_tiles,
                  "tiles drawn from a slide per training step (all when it has fewer)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--min-focus", a->min_focus,
                  "leave out tiles less sharp than this (tiles.csv's focus column)")
      ->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--seed", a->mil.seed, "initialisation, folds and tile draws")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "CPU cores: the folds' models, the final one and the attention maps, one per "
                  "core at a time (0 = all)")
      ->capture_default_str()
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--bootstrap", a->bootstrap, "bootstrap replicates of the AUC intervals")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
}

// The slide-level AUC of p beside the fixed scores of the same slides.
SlideEvaluation evaluate_beside_fixed_scores(const std::vector<MilBag>& bags,
                                             const std::vector<double>& p, int replicates,
                                             uint64_t seed) {
  std::vector<ScoredSlide> scored;
  for (size_t i = 0; i < bags.size(); ++i) {
    ScoredSlide s{bags[i].slide, bags[i].label, bags[i].patient, true,
                  bags[i].summary.is_object() ? bags[i].summary : nlohmann::json::object()};
    s.summary["p_mil"] = std::isfinite(p[i]) ? nlohmann::json(p[i]) : nlohmann::json();
    scored.push_back(std::move(s));
  }
  SlideEvaluationOptions o;
  o.scores = {"mil", "max", "top-mean", "mean", "area"};
  o.score = "mil";
  o.replicates = replicates;
  o.seed = seed;
  return evaluate_slides(scored, o);
}

SlideLabels tcga_labels_of(const std::vector<MilBag>& bags) {
  std::vector<std::string> paths;
  for (const MilBag& b : bags) paths.push_back(b.path);
  return SlideLabels::from_tcga_barcodes(paths);
}

// Every bag's P and attention under a saved model (no folds).
MilCrossValidation apply_model(const std::string& path, const std::vector<MilBag>& bags) {
  const AttentionMil model = load_attention_mil(path);
  require(model.features == bags.front().tiles.width,
          path + ": reads features " + std::to_string(model.features) + " wide, the cohort's are " +
              std::to_string(bags.front().tiles.width) + " (scored by another model)");
  MilCrossValidation scores;
  scores.p.assign(bags.size(), std::nan(""));
  scores.attention.resize(bags.size());
  for (size_t i = 0; i < bags.size(); ++i) {
    if (bags[i].tiles.rows == 0) continue;
    const auto out = model.forward(bags[i].tiles.features.data(), bags[i].tiles.rows);
    scores.p[i] = out.p_malignant;
    scores.attention[i] = out.attention;
  }
  return scores;
}

// slide-evaluation.json and slide-roc.png, the headline and the fixed
// scores' AUCs printed; returns the evaluation's JSON.
nlohmann::json report_evaluation(const MilArgs& a, const std::vector<MilBag>& bags,
                                 const std::vector<double>& p) {
  const SlideEvaluation e = evaluate_beside_fixed_scores(bags, p, a.bootstrap, a.mil.seed);
  write_slide_evaluation(e, a.output);
  std::printf("%s%s\n", a.apply.empty() ? "cross-validated " : "", e.headline().c_str());
  for (const auto& [score, predictions] : e.by_score)
    if (score != "mil" && !predictions.empty())
      std::printf("  beside %s of the tiles' P: AUC %.3f\n", score.c_str(),
                  compute_metrics(predictions).auc);
  return e.to_json();
}

// The final model, trained on every slide, with how it was made.
void save_final_model(const MilArgs& a, const std::vector<MilBag>& bags, const AttentionMil& model,
                      const nlohmann::json& evaluation) {
  const auto& metadata = bags.front().tiles.metadata;
  const nlohmann::json trained = {
      {"cohort", fs::absolute(a.cohort).lexically_normal().string()},
      {"slides", bags.size()},
      {"epochs", a.mil.epochs},
      {"attention", a.mil.attention},
      {"learning_rate", a.mil.learning_rate},
      {"weight_decay", a.mil.weight_decay},
      {"max_tiles", a.mil.max_tiles},
      {"min_focus", a.min_focus},
      {"seed", a.mil.seed},
      {"folds", a.folds},
      {"feature_models", metadata.count("models") ? metadata.at("models") : ""},
      // slide --mil warns when it scores with(out) TTA the other way
      {"feature_tta", metadata.count("tta") && metadata.at("tta") == "true"},
      {"cross_validated_auc", evaluation.value("auc", nlohmann::json())}};
  save_attention_mil(a.output + "/mil.safetensors", model, trained);
}

int run_mil(MilArgs a) {
  a.mil.threads = bound_cores(a.threads);
  require(fs::absolute(a.output).lexically_normal() != fs::absolute(a.cohort).lexically_normal(),
          "--output: " + a.output +
              " is the cohort's folder (its slide-evaluation.json would be replaced); choose "
              "another");
  require(!a.labels_path.empty() || a.tcga_labels || !a.apply.empty(),
          "the slides' labels are needed to train (--slide-labels FILE or --tcga-labels)");
  std::optional<SlideLabels> labels;  // a labels file is checked before any features are read
  if (!a.labels_path.empty()) labels = SlideLabels::read(a.labels_path);
  std::vector<MilBag> bags = read_mil_cohort(a.cohort, a.min_focus);
  if (a.tcga_labels) labels = tcga_labels_of(bags);
  if (labels) label_mil_bags(bags, *labels);
  const MilCrossValidation scores =
      a.apply.empty() ? cross_validate_mil(bags, a.folds, a.mil) : apply_model(a.apply, bags);
  make_directories(a.output);  // every input read and checked: nothing is written before
  const bool drawn = figures_drawable(
      "mil", "the attention maps and the ROC figure are written as their overlays and scripts");
  write_mil_outputs(a.output, bags, scores, a.mil.threads);
  const nlohmann::json evaluation =
      labels ? report_evaluation(a, bags, scores.p) : nlohmann::json::object();
  if (a.apply.empty()) save_final_model(a, bags, scores.final_model, evaluation);
  std::printf("%zu slides -> %s/ (%smil-predictions.csv, attention/ (csv, %s)%s)\n", bags.size(),
              a.output.c_str(), a.apply.empty() ? "mil.safetensors, " : "",
              drawn ? "png" : "overlay png, gnuplot script",
              labels ? (drawn ? ", slide-evaluation.json, slide-roc.png"
                              : ", slide-evaluation.json, slide-roc.png.gp")
                     : "");
  return 0;
}

}  // namespace

Runner add_mil(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "mil",
      "a slide-level model from slide labels: gated attention MIL over the tile features of "
      "`histocnn slide --features -o COHORT`, cross-validated by patient");
  auto a = std::make_shared<MilArgs>();
  cmd->add_option("cohort", a->cohort, "the -o folder of histocnn slide --features")->required();
  cmd->add_option("--output,-o", a->output, "results go here")->required();
  cmd->add_option("--slide-labels", a->labels_path,
                  "CSV of slide,label[,patient] (as histocnn slide reads it)");
  cmd->add_flag("--tcga-labels", a->tcga_labels, "labels and patients from TCGA barcodes");
  cmd->add_option("--apply", a->apply,
                  "score the cohort with this mil.safetensors instead of training (with labels: "
                  "evaluated too)");
  add_mil_options(cmd, a.get());
  return [a] {
    require(a->labels_path.empty() || !a->tcga_labels,
            "--slide-labels and --tcga-labels: give one");
    return run_mil(*a);
  };
}

}  // namespace histocnn::cli
