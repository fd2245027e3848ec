// The command line end to end: a short training on synthetic data that ends
// far above chance, eval/predict, resume equal to an uninterrupted run,
// divergence keeping the last good checkpoint, and one-line errors.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "cli_fixture.h"
#include "cli_util.h"
#include "core/atomic_file.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/dataset.h"
#include "data/grade_csv.h"
#include "data/image.h"
#include "dist/communicator.h"
#include "memory/adaptors.h"
#include "nn/safetensors.h"
#include "study/study.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/explain.h"
#include "train/temperature.h"

namespace histocnn {
namespace {

TEST_F(Cli, ShortTrainingEndsFarAboveChanceAndEvalAgrees) {
  const CommandResult r =
      run(train_args() + " --epochs 4 --flips --rotations --stain-jitter 0.05 -o " + out("run"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("epoch 4/4"), std::string::npos) << r.output;
  const auto metrics = nlohmann::json::parse(read_file(out("run") + "/metrics.json"));
  EXPECT_EQ(metrics["history"].size(), 4u);
  const double val = metrics["validation"]["per_crop"]["accuracy"];
  EXPECT_GE(val, 0.8) << r.output;

  const CommandResult e = run("eval --data " + data() + " --folds 4 --fold 1 --threads 1 -m " +
                              out("run/model.safetensors") + " -o " + out("eval.json"));
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("patient"), std::string::npos);
  const auto report = nlohmann::json::parse(read_file(out("eval.json")));
  EXPECT_GE(report["per_image"]["accuracy"].get<double>(), 0.8) << e.output;
  EXPECT_NE(e.output.find("files: " + out("eval.json") + ", " + out("eval") + ".images.csv"),
            std::string::npos)
      << e.output;
  EXPECT_NE(e.output.find("calibration: expected calibration error "), std::string::npos)
      << e.output;
  EXPECT_TRUE(report["calibration"]["per_image"]["ece"].is_number()) << report.dump(1);
  // The temperature fitted on the validation crops after every epoch is in the
  // model; eval applies it and says what it did.
  for (const auto& row : metrics["history"]) EXPECT_TRUE(row["temperature"].is_number()) << row;
  const ModelFile model = load_model_file(out("run/model.safetensors"));
  ASSERT_TRUE(model.trained.contains("calibration")) << model.trained.dump(1);
  EXPECT_EQ(model.trained["calibration"]["fitted_on"].get<int>(),
            metrics["validation"]["per_crop"]["count"].get<int>());
  EXPECT_GE(model.tempering().temperature, kMinTemperature);
  if (model.tempering().temperature != 1.0) {
    EXPECT_NE(e.output.find("before temperature scaling (T = "), std::string::npos) << e.output;
    EXPECT_TRUE(report["calibration"]["uncalibrated"]["per_crop"]["ece"].is_number());
  }
  EXPECT_EQ(e.output.find("capped"), std::string::npos) << e.output;  // a fitted T
  // A temperature at its cap (the scores barely separated the classes when
  // it was fitted) is named as such, not shown as if calibrated.
  ModelFile capped = model;
  capped.trained["calibration"]["temperature"] = kMaxTemperature;
  save_model_file(out("capped.safetensors"), capped);
  const CommandResult c = run("eval --data " + data() + " --folds 4 --fold 1 --threads 1 -m " +
                              out("capped.safetensors") + " --bootstrap 0");
  ASSERT_EQ(c.status, 0) << c.output;
  EXPECT_NE(c.output.find("(T = 20.00, capped: the model's scores barely separate the classes)"),
            std::string::npos)
      << c.output;
  const CommandResult raw = run("eval --data " + data() + " --folds 4 --fold 1 --threads 1 -m " +
                                out("run/model.safetensors") + " --no-calibration --bootstrap 0");
  ASSERT_EQ(raw.status, 0) << raw.output;
  EXPECT_NE(raw.output.find("(--no-calibration: raw probabilities)"), std::string::npos)
      << raw.output;
  // Every headline metric with its patient-bootstrap 95% interval.
  EXPECT_NE(e.output.find("95% CI  acc "), std::string::npos) << e.output;
  const auto& ci = report["intervals"]["per_image"]["accuracy"];
  ASSERT_TRUE(ci.is_array()) << report.dump(1);
  EXPECT_LE(ci[0].get<double>(), report["per_image"]["accuracy"].get<double>());
  EXPECT_GE(ci[1].get<double>(), report["per_image"]["accuracy"].get<double>());
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    // The figures name the data and fold; confusion per crop, image and patient,
    // coloured right/wrong with a colour bar; ROC curves each with a marker.
    const std::string roc = read_file(out("eval.roc.png.gp"));
    EXPECT_NE(roc.find("on synthetic, fold 1 of 4"), std::string::npos) << roc;
    EXPECT_NE(roc.find("pt 6"), std::string::npos) << roc;
    const std::string confusion = read_file(out("eval.confusion.png.gp"));
    for (const char* part : {"patient (n = ", "'#c0392b'", "'#2e7d32'", "set colorbox"})
      EXPECT_NE(confusion.find(part), std::string::npos) << part << "\n" << confusion;
    EXPECT_TRUE(std::filesystem::exists(out("eval.reliability.png")));
  }

  const CommandResult p = run("predict -m " + out("run/model.safetensors") + " " + data() +
                              "/train_1.png " + data() + "/train_3.png");
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("train_1.png,"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("image,p_malignant,prediction,refer\n"), std::string::npos) << p.output;
  // Referred when nothing less than certainty will do (unless it is certain).
  const CommandResult all = run("predict --refer-below 1 -m " + out("run/model.safetensors") + " " +
                                data() + "/train_1.png");
  ASSERT_EQ(all.status, 0) << all.output;
  const size_t row = all.output.find("train_1.png,");
  ASSERT_NE(row, std::string::npos) << all.output;
  const double p_row = std::stod(all.output.substr(row + 12));
  if (p_row > 0 && p_row < 1) {
    EXPECT_NE(all.output.find(",uncertain\n", row), std::string::npos) << all.output;
  }
  // --explain: Grad-CAM of the predicted class, whose mass lies on tissue
  // rather than on the white glass and lumen around it.
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    const CommandResult x =
        run("predict --explain " + out("why") + " -m " + out("run/model.safetensors") + " " +
            data() + "/train_1.png " + data() + "/train_3.png");
    ASSERT_EQ(x.status, 0) << x.output;
    EXPECT_NE(x.output.find("files: " + out("why") + "/*.gradcam.png"), std::string::npos)
        << x.output;
    for (const char* f :
         {"train_1.gradcam.png", "train_1.gradcam.overlay.png", "train_3.gradcam.png"})
      EXPECT_GT(std::filesystem::file_size(out("why") + "/" + f), 1000u) << f;
  }
  // Malignant tissue beside glass (each malignant image's left half painted
  // white): the map of "malignant" rests on the tissue. (For "benign" this
  // short-trained model does count glass as evidence — benign glands have
  // more lumen — and Grad-CAM faithfully shows it, so that is not asserted.)
  const std::vector<ModelFile> models = {load_model_file(out("run/model.safetensors"))};
  double glass_mass = 0, mass = 0;
  int explained = 0;
  for (const GradeRow& row : read_grade_csv(data() + "/Grade.csv")) {
    if (row.label != 1 || explained++ == 4) continue;
    Image image = load_image(data() + "/" + row.name + ".png");
    for (int y = 0; y < image.height; ++y)
      std::fill(image.row(y), image.row(y) + 3 * (image.width / 2), uint8_t(242));
    const Explanation e =
        explain_image(image, models, prediction_crops(image.width, image.height, models[0], 3), 1);
    for (int y = 0; y < image.height; ++y)
      for (int x = 0; x < image.width; ++x) {
        const double v = e.values[size_t(y) * image.width + x];
        glass_mass += x < image.width / 2 ? v : 0;
        mass += v;
      }
  }
  ASSERT_GT(mass, 0);
  EXPECT_LT(glass_mass / mass, 0.25) << "Grad-CAM mass of 'malignant' on the glass half";
}

TEST_F(Cli, EvalTakesTheModelsFoldSeedAndWarnsWhenItSeesTrainingImages) {
  const std::string model = out("fold_seed/model.safetensors");
  ASSERT_EQ(run(train_args() + " --epochs 1 --fold-seed 5 -o " + out("fold_seed")).status, 0);
  // --folds/--fold alone: the partition of the model's own fold seed, held out.
  const CommandResult held_out =
      run("eval --data " + data() + " --folds 4 --fold 1 --threads 1 -m " + model + " -o " +
          out("fold_seed/held_out.json"));
  ASSERT_EQ(held_out.status, 0) << held_out.output;
  EXPECT_EQ(held_out.output.find("warning"), std::string::npos) << held_out.output;
  EXPECT_EQ(
      nlohmann::json::parse(read_file(out("fold_seed/held_out.json")))["training_images_evaluated"],
      0);
  // The whole split: the 18 training images are counted and the figures flagged.
  const CommandResult all = run("eval --data " + data() + " --folds 0 --threads 1 -m " + model +
                                " -o " + out("fold_seed/all.json"));
  ASSERT_EQ(all.status, 0) << all.output;
  EXPECT_NE(all.output.find("warning: 18 of the 24 images evaluated were used to train"),
            std::string::npos)
      << all.output;
  EXPECT_EQ(
      nlohmann::json::parse(read_file(out("fold_seed/all.json")))["training_images_evaluated"], 18);
}

TEST_F(Cli, StainNormalisedModelSelectionAndTtaEvalWriteTheirEvidence) {
  // Every accuracy lever at once on synthetic slides: Macenko target stored
  // in the model, HED jitter, background-skipping crops, AdamW + warm-up +
  // cosine, the best epoch kept, early stopping; then eval with TTA writes
  // the JSON, the per-image CSV and the figures.
  const CommandResult r =
      run(train_args() +
          " --epochs 6 --flips --rotations --stain-normalize macenko --hed-jitter 0.05"
          " --max-background 0.5 --weight-decay 0.05 --lr-schedule cosine"
          " --warmup-epochs 1 --select-by image_auc --early-stop 2 -o " +
          out("levers"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("*best*"), std::string::npos) << r.output;
  const ModelFile best = load_model_file(out("levers/model.best.safetensors"));
  ASSERT_TRUE(best.stain_target.has_value());
  EXPECT_EQ(best.trained["stain_normalize"], "macenko");
  const auto metrics = nlohmann::json::parse(read_file(out("levers/metrics.json")));
  const int best_epoch = metrics["best"]["epoch"];
  const int epochs = int(metrics["history"].size());
  EXPECT_GE(best_epoch, 1);
  // Either all 6 epochs ran, or it stopped exactly 2 epochs after the best one.
  EXPECT_TRUE(epochs == 6 || epochs == best_epoch + 2) << epochs << " vs best " << best_epoch;
  if (epochs < 6) {
    EXPECT_NE(r.output.find("early stop: image_auc"), std::string::npos);
  }

  const CommandResult e =
      run("eval --data " + data() + " --threads 1 --tta -m " +
          out("levers/model.best.safetensors") + " -o " + out("levers/eval.json"));
  ASSERT_EQ(e.status, 0) << e.output;
  const auto report = nlohmann::json::parse(read_file(out("levers/eval.json")));
  EXPECT_TRUE(report["tta"].get<bool>());
  EXPECT_GE(report["per_image"]["accuracy"].get<double>(), 0.8) << e.output;
  const std::string csv = read_file(out("levers/eval.images.csv"));
  EXPECT_EQ(csv.rfind("image,patient,label,crops,p_malignant,prediction\n", 0), 0u) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), report["images"].get<int>() + 1) << csv;
  for (const char* figure : {"roc.png", "roc.svg", "confusion.png", "confusion.svg"})
    EXPECT_GT(std::filesystem::file_size(out("levers/eval.") + figure), 1000u) << figure;
  const CommandResult p = run("predict --tta -m " + out("levers/model.best.safetensors") + " " +
                              data() + "/train_1.png");
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_NE(p.output.find("train_1.png,"), std::string::npos) << p.output;

  // Bad combinations are one-line errors naming the flag.
  for (const auto& [args, flag] : std::vector<std::pair<std::string, std::string>>{
           {" --early-stop 3", "--early-stop"},
           {" --select-by loss", "--select-by"},
           {" --stain-normalize reinhard", "--stain-normalize"},
           {" --weight-decay -1", "--weight-decay"},
           {" --hed-jitter 2", "--hed-jitter"},
           {" --lr-schedule cosine --lr-min-fraction 2", "--lr-min-fraction"},
           {" --warmup-epochs -1", "--warmup-epochs"}}) {
    const CommandResult bad = run(train_args() + " --epochs 1 -o " + out("bad") + args);
    EXPECT_NE(bad.status, 0) << args;
    EXPECT_NE(bad.output.find(flag), std::string::npos) << bad.output;
  }
  const CommandResult no_validation =
      run("train --data " + data() + " --size 32 --crop 96 --folds 0 --epochs 1 --threads 1 " +
          "--select-by image_auc -o " + out("bad"));
  EXPECT_NE(no_validation.status, 0);
  EXPECT_NE(no_validation.output.find("--select-by: needs validation images"), std::string::npos)
      << no_validation.output;
}

TEST_F(Cli, Bf16TrainsWhereSupportedAndIsAOneLineErrorElsewhere) {
  // Where oneDNN may not use bf16 kernels (here forced by ONEDNN_MAX_CPU_ISA),
  // the refusal names the flag, before any file is written.
  const CommandResult refused =
      run_raw("ONEDNN_MAX_CPU_ISA=AVX2 " + std::string(HISTOCNN_BINARY) + " " + train_args() +
              " --epochs 1 --precision bf16 -o " + out("bf16_refused"));
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("--precision bf16: this CPU has neither AVX512-BF16 nor AMX"),
            std::string::npos)
      << refused.output;
  EXPECT_FALSE(std::filesystem::exists(out("bf16_refused/model.safetensors")));
  if (!cpu_supports_bf16()) GTEST_SKIP() << "no AVX512-BF16 / AMX: bf16 training not run";
  const CommandResult r =
      run(train_args() + " --epochs 3 --flips --precision bf16 -o " + out("bf16"));
  ASSERT_EQ(r.status, 0) << r.output;
  const ModelFile model = load_model_file(out("bf16/model.safetensors"));
  EXPECT_EQ(model.trained.at("precision"), "bf16");
  const auto metrics = nlohmann::json::parse(read_file(out("bf16/metrics.json")));
  EXPECT_EQ(metrics["history"].size(), 3u);
  EXPECT_GE(metrics["validation"]["per_crop"]["accuracy"].get<double>(), 0.75) << r.output;
}

TEST_F(Cli, BatchNormModelsStoreTheirRunningStatisticsAndResumeExactly) {
  // PyTorch's buffer names; only full batches train (400 crops / 20 = 20 steps
  // per epoch); fresh crops each epoch resume exactly (seeded by the epoch);
  // the preset's values apply only where no flag was given.
  const std::string spec = out("bn.spec");
  write_file_atomically(spec,
                        "conv 8 kernel=3 pool=2 pad=same bn\nconv 16 kernel=3 pool=2 bn\n"
                        "gap\ndense 16\ndropout 0.3\ndense 2\n");
  const std::string args = train_args() + " --model " + spec + " --fresh-crops";
  ASSERT_EQ(run(args + " --epochs 2 -o " + out("bn_straight")).status, 0);
  ASSERT_EQ(run(args + " --epochs 1 -o " + out("bn_resumed")).status, 0);
  const CommandResult r = run(args + " --epochs 2 --resume -o " + out("bn_resumed"));
  ASSERT_EQ(r.status, 0) << r.output;
  const ModelFile a = load_model_file(out("bn_straight/model.safetensors"));
  const ModelFile b = load_model_file(out("bn_resumed/model.safetensors"));
  EXPECT_EQ(a.params.values, b.params.values);
  EXPECT_EQ(a.buffers.values, b.buffers.values);
  EXPECT_EQ(a.buffers.batches_tracked, 40);
  EXPECT_EQ(b.buffers.batches_tracked, 40);
  const SafetensorsFile raw = read_safetensors(out("bn_straight/model.safetensors"));
  for (const char* name : {"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                           "bn2.running_var", "conv1.weight"})
    EXPECT_EQ(raw.tensors.count(name), 1u) << name;
  EXPECT_EQ(raw.tensors.count("conv1.bias"), 0u) << "a conv followed by batch norm has no bias";
  ASSERT_EQ(raw.tensors.count("bn2.num_batches_tracked"), 1u);
  EXPECT_EQ(raw.tensors.at("bn2.num_batches_tracked").ints, std::vector<int64_t>{40});
  const CommandResult e = run("eval --data " + data() + " --threads 1 -m " +
                              out("bn_straight/model.safetensors") + " -o " + out("bn_eval.json"));
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_GE(
      nlohmann::json::parse(read_file(out("bn_eval.json")))["per_image"]["accuracy"].get<double>(),
      0.7)
      << e.output;
  // The CUDA step's schedule holds the batch-norm and pooling tensors too.
  const CommandResult cuda = run("memplan --device cuda --model " + spec + " --size 32");
  ASSERT_EQ(cuda.status, 0) << cuda.output;
  for (const char* tensor : {"conv1.bn_out", "conv2.d_bn_out", "gap", "d_gap"})
    EXPECT_NE(cuda.output.find(tensor), std::string::npos) << tensor << "\n" << cuda.output;
  // A preset fills in what was not given; an explicit flag wins.
  ASSERT_EQ(run(train_args() + " --preset accurate --epochs 1 -o " + out("preset")).status, 0);
  const ModelFile p = load_model_file(out("preset/model.safetensors"));
  EXPECT_EQ(p.trained["preset"], "accurate");
  EXPECT_EQ(p.trained["crop"], "96x96");
  EXPECT_EQ(p.trained["stain_normalize"], "macenko-residual");
  EXPECT_FLOAT_EQ(p.trained["hed_jitter"].get<float>(), 0.2f);
  EXPECT_EQ(p.trained["lr_schedule"], "cosine");
  EXPECT_TRUE(p.trained["flips"].get<bool>());
  EXPECT_TRUE(p.trained["eval_tta"].get<bool>());
  EXPECT_EQ(p.width, 32);
  const CommandResult unknown = run(train_args() + " --preset fastest -o " + out("preset2"));
  EXPECT_NE(unknown.status, 0);
  EXPECT_NE(unknown.output.find("--preset: unknown preset 'fastest'"), std::string::npos)
      << unknown.output;
}

TEST_F(Cli, StainPrintsEachImagesStainsAndWritesItNormalised) {
  const CommandResult r = run("stain --reference " + data() + "/train_1.png " + data() +
                              "/train_2.png " + data() + "/train_3.png -o " + out("stained"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.rfind("image,h_r,h_g,h_b,e_r,e_g,e_b,max_h,max_e\n(target),", 0), 0u)
      << r.output;
  EXPECT_NE(r.output.find("/train_3.png,"), std::string::npos) << r.output;
  for (const char* name : {"train_2.png", "train_3.png"})
    EXPECT_TRUE(std::filesystem::exists(out("stained") + "/" + name)) << name;
  ASSERT_EQ(run(train_args() + " --epochs 1 -o " + out("plain")).status, 0);
  // The recipe (Vahadane's estimate, residual kept) is recorded in the model
  // and applied by eval (macenko-residual: the preset above).
  ASSERT_EQ(run(train_args() + " --epochs 1 --stain-normalize vahadane-residual -o " + out("resid"))
                .status,
            0);
  EXPECT_EQ(load_model_file(out("resid/model.safetensors")).trained["stain_normalize"],
            "vahadane-residual");
  const CommandResult resid_eval =
      run("eval --data " + data() + " --threads 1 -m " + out("resid/model.safetensors"));
  EXPECT_EQ(resid_eval.status, 0) << resid_eval.output;
  const CommandResult kept = run("stain --keep-residual --reference " + data() + "/train_1.png " +
                                 data() + "/train_2.png -o " + out("stained_kept"));
  EXPECT_EQ(kept.status, 0) << kept.output;
  // Re-estimated on the normalised image, the stains are the target's (the
  // haematoxylin vector within 2 degrees, eosin closer than before).
  auto vectors = [](const std::string& csv, const std::string& row_prefix) {
    const size_t at = csv.find(row_prefix);
    std::array<double, 6> v{};
    if (at == std::string::npos) return v;
    const size_t comma = csv.find(',', at + row_prefix.size() - 1);
    std::sscanf(csv.c_str() + comma + 1, "%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3],
                &v[4], &v[5]);
    return v;
  };
  auto degrees = [](const std::array<double, 6>& a, const std::array<double, 6>& b, int off) {
    double dot = 0;
    for (int i = 0; i < 3; ++i) dot += a[size_t(off + i)] * b[size_t(off + i)];
    return std::acos(std::min(1.0, dot)) * 180 / M_PI;
  };
  const CommandResult again = run("stain " + out("stained") + "/train_3.png");
  ASSERT_EQ(again.status, 0) << again.output;
  const auto target = vectors(r.output, "(target),"), before = vectors(r.output, "/train_3.png,"),
             after = vectors(again.output, "/train_3.png,");
  EXPECT_LT(degrees(after, target, 0), 2.0) << r.output << again.output;
  EXPECT_LT(degrees(after, target, 3), degrees(before, target, 3)) << r.output << again.output;
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"stain -o " + out("x") + " " + data() + "/train_1.png", "--output: needs a target"},
           {"stain -m " + out("plain/model.safetensors") + " " + data() + "/train_1.png",
            "no stain target stored"},
           {"stain --method macenko -m " + out("resid/model.safetensors") + " " + data() +
                "/train_1.png",
            "--method: " + out("resid/model.safetensors") + " normalises with vahadane"},
           {"stain " + out("missing.png"), "missing.png"}}) {
    const CommandResult bad = run(args);
    EXPECT_EQ(bad.status, 1) << args;
    EXPECT_NE(bad.output.find(message), std::string::npos) << bad.output;
  }
}

TEST_F(Cli, ResumeGivesTheSameWeightsAsAnUninterruptedRun) {
  ASSERT_EQ(run(train_args() + " --epochs 3 -o " + out("straight")).status, 0);
  ASSERT_EQ(run(train_args() + " --epochs 2 -o " + out("resumed")).status, 0);
  const CommandResult r = run(train_args() + " --epochs 3 --resume -o " + out("resumed"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
  const ModelFile a = load_model_file(out("straight/model.safetensors"));
  const ModelFile b = load_model_file(out("resumed/model.safetensors"));
  ASSERT_EQ(a.params.values.size(), b.params.values.size());
  for (size_t i = 0; i < a.params.values.size(); ++i)
    ASSERT_NEAR(a.params.values[i], b.params.values[i], 1e-5) << i;
}

TEST_F(Cli, KilledAtRandomMomentsEveryFileStaysWholeAndResumeEndsTheSame) {
  const std::string straight = out("kill_straight"), killed = out("kill_loop");
  // Each round is killed at a random moment within the epoch after the one it
  // logs: while it trains the next one, validates, or writes the checkpoint.
  // The window is this machine's own epoch time (measured by the straight
  // run), so a fast machine is killed mid-run as often as a slow one.
  ASSERT_EQ(run(train_args() + " --epochs 12 -o " + straight).status, 0);
  double epoch_seconds = 0;
  const auto metrics = nlohmann::json::parse(read_file(straight + "/metrics.json"));
  for (const auto& e : metrics["history"]) epoch_seconds += e["seconds"].get<double>() / 12;
  const uint64_t window_us = std::max<uint64_t>(1000, uint64_t(1.1e6 * epoch_seconds));
  Rng rng(12);
  bool said_no_checkpoint = false;
  int interrupted = 0;
  for (int round = 0; round < 10; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const std::string command = "exec " + std::string(HISTOCNN_BINARY) + " " + train_args() +
                                " --epochs 12 --resume -o " + killed + " 2>&1";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    FILE* output = fdopen(fds[0], "r");
    char line[512];
    while (fgets(line, sizeof line, output)) {
      said_no_checkpoint |= std::strstr(line, "no checkpoint in") != nullptr;
      if (std::strncmp(line, "epoch ", 6) == 0) break;
    }
    usleep(useconds_t(rng.below(window_us)));
    kill(pid, SIGKILL);
    fclose(output);
    int status = 0;
    waitpid(pid, &status, 0);
    interrupted += WIFSIGNALED(status);
    // Every file is a complete version: it parses. Temporaries of the killed
    // writer are allowed (the next run removes them).
    for (const auto& entry : std::filesystem::directory_iterator(killed)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".tmp.") != std::string::npos) continue;
      if (name.size() > 12 && name.substr(name.size() - 12) == ".safetensors") {
        EXPECT_NO_THROW(load_model_file(entry.path().string())) << name << " round " << round;
      } else if (name == "metrics.json") {
        EXPECT_TRUE(nlohmann::json::accept(read_file(entry.path().string()))) << round;
      }
    }
  }
  EXPECT_GE(interrupted, 5) << "most rounds were really killed mid-run";
  EXPECT_TRUE(said_no_checkpoint) << "the first round, with no checkpoint yet, said so";
  const CommandResult last = run(train_args() + " --epochs 12 --resume -o " + killed);
  ASSERT_EQ(last.status, 0) << last.output;
  for (const auto& entry : std::filesystem::directory_iterator(killed))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos)
        << "stale temporaries are removed";
  const ModelFile a = load_model_file(straight + "/model.safetensors");
  const ModelFile b = load_model_file(killed + "/model.safetensors");
  ASSERT_EQ(a.params.values.size(), b.params.values.size());
  for (size_t i = 0; i < a.params.values.size(); ++i)
    ASSERT_NEAR(a.params.values[i], b.params.values[i], 1e-5) << i;
}

TEST_F(Cli, ResumeRefusesOtherSettingsAndEvalDefaultsToTheHeldOutFold) {
  const std::string base = "train --data " + data() +
                           " --size 32 --crop 96 --crops-benign 200 --crops-malignant 200 "
                           "--threads 1 --no-progress";
  auto args = [&](const std::string& batch, const std::string& seed, const std::string& fold,
                  const std::string& extra) {
    return base + " --batch " + batch + " --seed " + seed + " --folds 4 --fold " + fold + " " +
           extra;
  };
  ASSERT_EQ(run(args("20", "3", "1", "--epochs 1 -o " + out("settings"))).status, 0);
  const std::string more = "--epochs 2 --resume -o " + out("settings");
  for (const auto& [flag, command] : std::vector<std::pair<std::string, std::string>>{
           {"--batch", args("10", "3", "1", more)},
           {"--seed", args("20", "4", "1", more)},
           {"--fold", args("20", "3", "2", more)},
           {"--flips", args("20", "3", "1", "--flips " + more)}}) {
    const CommandResult r = run(command);
    EXPECT_NE(r.status, 0) << flag;
    EXPECT_NE(r.output.find("--resume: " + flag + " is"), std::string::npos) << r.output;
  }
  const ModelFile model = load_model_file(out("settings/model.safetensors"));
  EXPECT_EQ(model.trained["fold"], 1);
  EXPECT_EQ(model.trained["folds"], 4);
  EXPECT_EQ(model.trained["batch"], 20);
  EXPECT_FALSE(model.trained["git"].get<std::string>().empty());
  const CommandResult e =
      run("eval --data " + data() + " --threads 1 -m " + out("settings/model.safetensors"));
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("held-out fold 1 of 4"), std::string::npos) << e.output;
  ASSERT_EQ(run(base + " --folds 0 --epochs 1 -o " + out("all")).status, 0);
  const CommandResult all =
      run("eval --data " + data() + " --threads 1 -m " + out("all/model.safetensors"));
  EXPECT_NE(all.status, 0);
  EXPECT_NE(all.output.find("explicit choice"), std::string::npos) << all.output;
}

TEST_F(Cli, DivergenceStopsWithAClearMessageAndKeepsTheLastGoodCheckpoint) {
  ASSERT_EQ(run(train_args() + " --epochs 1 -o " + out("diverge")).status, 0);
  const std::string checkpoint = out("diverge/checkpoint.safetensors");
  const CommandResult refused =
      run(train_args() + " --epochs 3 --resume --lr 0.5 -o " + out("diverge"));
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("--resume: --lr is"), std::string::npos) << refused.output;
  // Weights whose products overflow (finite, 1e30): the first step's loss is
  // not a number. (--lr is capped at 1, which Adam's bounded steps survive.)
  SafetensorsFile f = read_safetensors(checkpoint);
  for (auto& [name, t] : f.tensors)
    if (name.rfind("optimizer.", 0) != 0) std::fill(t.values.begin(), t.values.end(), 1e30f);
  write_safetensors(checkpoint, f);
  const std::string before = read_file(checkpoint);
  const CommandResult r = run(train_args() + " --epochs 3 --resume -o " + out("diverge"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("training diverged"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the last good checkpoint is kept in"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(checkpoint), before);
}

TEST_F(Cli, BadInputGivesOneLineErrorsAndNonZeroExit) {
  struct Case {
    std::string args, fragment;
  };
  const std::vector<Case> cases = {
      {"train --data " + data() + " -o " + out("x") + " --bogus", "--bogus"},
      {"train --data " + data() + " -o " + out("x") + " --batch 0", "--batch"},
      {"train --data /nonexistent/glas -o " + out("x"), "/nonexistent/glas: data folder not found"},
      {"train --data " + data() + " -o " + out("x") + " --size 10x", "--size"},
      {"train --data " + data() + " -o " + out("x") + " --threads 999", "--threads"},
      {"train --data " + data() + " -o " + out("x") + " --crop 500",
       "smaller than the 500x500 crop"},
      {"train --data " + data() + " -o " + out("x") + " --device tpu", "--device"},
      {"eval --data " + data() + " -m " + out("missing.safetensors"),
       "missing.safetensors: model file not found"},
      {"predict -m " + out("missing.safetensors") + " a.png", "model file not found"},
      {"synth -o " + out("s") + " --format gif", "--format"},
      {"frobnicate", "frobnicate"},
  };
  for (const auto& c : cases) {
    const CommandResult r = run(c.args);
    EXPECT_NE(r.status, 0) << c.args;
    EXPECT_NE(r.output.find(c.fragment), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_LE(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.args << "\n" << r.output;
    EXPECT_EQ(r.output.find("histocnn: "), 0u) << r.output;
  }
}

TEST_F(Cli, CorruptGradeCsvAndLabelsAreNamed) {
  testing::TempDir bad;
  write_file_atomically(bad / "Grade.csv", "name,patient ID,grade (GlaS)\ntrain_1,1, adenoma\n");
  CommandResult r = run("train --data " + bad.path() + " -o " + out("y"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("Grade.csv line 2: grade 'adenoma'"), std::string::npos) << r.output;
  std::filesystem::remove(bad / "Grade.csv");
  r = run("train --data " + bad.path() + " -o " + out("y"));
  EXPECT_NE(r.output.find(bad.path() + ": neither Grade.csv (the GlaS layout) nor class folders"),
            std::string::npos)
      << r.output;
}

TEST_F(Cli, EveryAllocatorTrainsOnTheCpuAndReportsItsStatistics) {
  for (const std::string allocator : {"plan", "pool", "direct"}) {
    const CommandResult r =
        run(train_args() + " --epochs 1 --allocator " + allocator + " --allocation-log " +
            out("alloc_" + allocator + ".csv") + " -o " + out("alloc_" + allocator));
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("memory: allocator " + allocator), std::string::npos) << r.output;
    const auto metrics =
        nlohmann::json::parse(read_file(out("alloc_" + allocator) + "/metrics.json"));
    const auto& a = metrics["allocator"];
    EXPECT_EQ(a["allocator"], allocator);
    EXPECT_GT(a["allocations"].get<int>(), 0);
    EXPECT_GT(a["peak_bytes_in_use"].get<int64_t>(), 0);
    const int steps = metrics["history"][0]["profile"]["steps"];
    if (allocator == "plan") {
      EXPECT_EQ(a["allocations"], 1) << "one arena for the whole run";
    } else {
      EXPECT_GT(a["allocations"].get<int>(), 10 * steps) << "a call per tensor per step";
    }
    if (allocator == "pool") {
      EXPECT_LT(a["device_malloc_calls"].get<int>(), 5);
    }
    if (allocator == "direct") {
      EXPECT_EQ(a["device_malloc_calls"], a["allocations"]);
    }
    EXPECT_GT(read_allocation_log(out("alloc_" + allocator + ".csv")).size(), 0u);
  }
}

TEST_F(Cli, OutOfMemoryIsOneLineWithTheNumbers) {
  for (const std::string allocator : {"plan", "pool", "direct"}) {
    const CommandResult r = run(train_args() + " --epochs 1 --allocator " + allocator +
                                " --gpu-mem-limit 1MB -o " + out("oom_" + allocator));
    EXPECT_EQ(r.status, 1) << r.output;
    const auto at = r.output.find("histocnn: out of memory");
    ASSERT_NE(at, std::string::npos) << r.output;
    const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
    for (const char* part : {"requested", "reserved", "in use", "largest free block",
                             "fragmentation", "limit is 1 MB"})
      EXPECT_NE(line.find(part), std::string::npos) << part << " missing: " << line;
  }
  const CommandResult graphs = run(train_args() + " --epochs 1 --cuda-graphs -o " + out("g2"));
  EXPECT_NE(graphs.output.find("--cuda-graphs: applies to --device cuda"), std::string::npos)
      << graphs.output;
}

}  // namespace
}  // namespace histocnn
