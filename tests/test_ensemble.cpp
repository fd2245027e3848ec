// Deep ensembles: the ensemble model file (members under PyTorch ModuleList
// names, round trip, refusals) and evaluation averaging the members.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "cli_util.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "nn/safetensors.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/ensemble.h"
#include "train/evaluate.h"
#include "train/temperature.h"

namespace histocnn {
namespace {

using testing::TempDir;

constexpr const char* kBatchNormNet =
    "conv 8 kernel=3 pool=2 pad=same bn; conv 8 kernel=3 pool=2 bn; gap; dense 8; dense 2";

// A member as training would write it: the seed's weights, batch-norm
// statistics that are not the initial ones, a stain target and a recipe.
ModelFile member(uint64_t seed, int width = 16) {
  ModelFile m;
  m.spec = parse_model_spec(kBatchNormNet, "test");
  m.width = width;
  m.height = 16;
  m.crop = "64x64";
  m.normalization = Normalization::parse("0.7,0.5,0.6,0.2,0.25,0.21", "test");
  StainMatrix target;
  target.he[0][0] = 0.65f, target.he[0][1] = 0.70f, target.he[0][2] = 0.29f;
  target.he[1][0] = 0.07f, target.he[1][1] = 0.99f, target.he[1][2] = 0.11f;
  for (auto& row : target.he) {  // unit optical-density vectors
    const float norm = std::sqrt(row[0] * row[0] + row[1] * row[1] + row[2] * row[2]);
    for (float& v : row) v /= norm;
  }
  target.max_concentration[0] = 1.9f, target.max_concentration[1] = 1.0f;
  m.stain_target = target;
  const NetworkShape shape = infer_shapes(m.spec, 1, m.height, m.width);
  m.params = Parameters::glorot(shape, seed);
  m.buffers = Buffers::initial(shape);
  for (size_t i = 0; i < m.buffers.values.size(); ++i)
    m.buffers.values[i] = 0.5f + float((i * 7 + seed) % 11) / 10;
  m.buffers.batches_tracked = int64_t(100 + seed);
  m.trained = {{"seed", seed}, {"stain_normalize", "macenko-residual"}, {"folds", 5}};
  return m;
}

TEST(EnsembleFile, MembersRoundTripUnderModuleListNames) {
  TempDir dir;
  const std::string path = dir / "ensemble.safetensors";
  const std::vector<ModelFile> written = {member(1), member(2), member(3)};
  save_ensemble_file(path, written);

  const std::vector<ModelFile> read = load_models(path);
  ASSERT_EQ(read.size(), 3u);
  for (size_t k = 0; k < read.size(); ++k) {
    EXPECT_EQ(read[k].params.values, written[k].params.values) << "member " << k;
    for (const auto& info : written[k].buffers.layout)  // (values hold alignment padding)
      EXPECT_EQ(
          std::vector<float>(read[k].buffers.data(info), read[k].buffers.data(info) + info.size),
          std::vector<float>(written[k].buffers.data(info),
                             written[k].buffers.data(info) + info.size))
          << "member " << k << " " << info.name;
    EXPECT_EQ(read[k].buffers.batches_tracked, written[k].buffers.batches_tracked);
    EXPECT_EQ(read[k].trained["seed"], written[k].trained["seed"]) << "each member's recipe";
    EXPECT_TRUE(read[k].stain_recipe().keep_residual);
    ASSERT_TRUE(read[k].stain_target.has_value());
    EXPECT_EQ(read[k].stain_target->text(), written[k].stain_target->text());
    EXPECT_EQ(read[k].normalization.text(), written[k].normalization.text());
    EXPECT_EQ(input_difference(read[k], written[0]), "");
  }
  EXPECT_NE(read[0].params.values, read[1].params.values) << "members keep their own weights";

  // The names a PyTorch nn.ModuleList called `members` would give.
  const SafetensorsFile raw = read_safetensors(path);
  EXPECT_TRUE(raw.tensors.count("members.0.conv1.weight"));
  EXPECT_TRUE(raw.tensors.count("members.2.bn2.running_var"));
  ASSERT_TRUE(raw.tensors.count("members.1.bn1.num_batches_tracked"));
  EXPECT_EQ(raw.tensors.at("members.1.bn1.num_batches_tracked").ints.at(0), 102);
  EXPECT_FALSE(raw.tensors.count("conv1.weight")) << "no unprefixed model beside the members";
}

TEST(ModelFileStain, TheRecipeIsReadAndOneNoVersionWroteIsRefused) {
  TempDir dir;
  ModelFile m = member(1);
  m.trained["stain_normalize"] = "vahadane";
  save_model_file(dir / "v.safetensors", m);
  const StainRecipe r = load_model_file(dir / "v.safetensors").stain_recipe();
  EXPECT_EQ(r.method, StainMethod::vahadane);
  EXPECT_FALSE(r.keep_residual);
  m.trained.erase("stain_normalize");  // files from before the recipe was recorded: Macenko's
  save_model_file(dir / "old.safetensors", m);
  EXPECT_EQ(load_model_file(dir / "old.safetensors").stain_recipe().name(), "macenko");
  m.trained["stain_normalize"] = "reinhard";
  save_model_file(dir / "r.safetensors", m);
  try {
    load_model_file(dir / "r.safetensors");
    FAIL() << "loaded a stain recipe no version writes";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("r.safetensors: histocnn.trained stain_normalize: "
                                         "expected one of macenko,"),
              std::string::npos)
        << e.what();
  }
}

TEST(EnsembleFile, OneModelLoadsAsOneMemberAndAnEnsembleIsNoSingleModel) {
  TempDir dir;
  save_model_file(dir / "one.safetensors", member(4));
  const std::vector<ModelFile> one = load_models(dir / "one.safetensors");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].params.values, member(4).params.values);

  save_ensemble_file(dir / "two.safetensors", {member(1), member(2)});
  try {
    load_model_file(dir / "two.safetensors");  // e.g. train --init
    FAIL() << "an ensemble loaded as one model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("two.safetensors: an ensemble"), std::string::npos)
        << e.what();
  }
}

TEST(EnsembleFile, MembersThatReadImagesDifferentlyAreRefused) {
  TempDir dir;
  auto refused = [&](std::vector<ModelFile> members, const std::string& what) {
    try {
      save_ensemble_file(dir / "bad.safetensors", members);
      ADD_FAILURE() << "accepted members differing in " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("member 2 differs from member 1 in " + what),
                std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "bad.safetensors")) << "nothing written";
  };
  refused({member(1), member(2, 24)}, "input size");
  ModelFile other_crop = member(2);
  other_crop.crop = "400x400";
  refused({member(1), other_crop}, "crop");
  ModelFile other_stain = member(2);
  other_stain.stain_target->max_concentration[1] = 1.2f;
  refused({member(1), other_stain}, "stain normalisation");
  ModelFile no_residual = member(2);
  no_residual.trained["stain_normalize"] = "macenko";
  refused({member(1), no_residual}, "stain normalisation");
  ModelFile other_norm = member(2);
  other_norm.normalization = Normalization{};
  refused({member(1), other_norm}, "input normalisation");
  EXPECT_THROW(save_ensemble_file(dir / "bad.safetensors", {member(1)}), Error);
}

// Random 16x16 crops of four images, two per class.
ExampleSet random_examples() {
  ExampleSet set;
  set.width = set.height = 16;
  for (int i = 0; i < 4; ++i)
    set.images.push_back({"img" + std::to_string(i), "", "p" + std::to_string(i / 2), i % 2});
  for (int e = 0; e < 24; ++e) set.examples.push_back({e % 4, e % 2, e, 0});
  const std::vector<float> noise = testing::random_vector(24 * 16 * 16 * 3, 5, 0, 255);
  for (float v : noise) set.pixels.push_back(uint8_t(v));
  return set;
}

TEST(EnsembleEvaluation, CropAndImageProbabilitiesAreTheMembersMean) {
  const ExampleSet set = random_examples();
  const std::vector<ModelFile> models = {member(1), member(2), member(3)};
  const PredictionSteps all = compile_for_prediction(cpu_device(), models, 5);  // 24 = 4 x 5 + 4
  ASSERT_EQ(all.members.size(), 3u);
  const Normalization norm = models[0].normalization;
  std::vector<EvalReport> alone;
  for (TrainingStep* step : all.members) alone.push_back(evaluate(*step, set, norm));
  const EvalReport ensemble = evaluate(all.members, set, norm);
  EXPECT_EQ(ensemble.members, 3);
  EXPECT_EQ(ensemble.to_json()["members"], 3);
  ASSERT_EQ(ensemble.crops.size(), set.examples.size());
  for (size_t i = 0; i < ensemble.crops.size(); ++i) {
    const double mean = (double(alone[0].crops[i].p_malignant) + alone[1].crops[i].p_malignant +
                         alone[2].crops[i].p_malignant) /
                        3;
    EXPECT_NEAR(ensemble.crops[i].p_malignant, mean, 1e-6) << "crop " << i;
  }
  bool members_disagree = false;
  ASSERT_EQ(ensemble.images.size(), 4u);
  for (size_t i = 0; i < ensemble.images.size(); ++i) {
    double mean = 0, squares = 0;
    for (const auto& r : alone) mean += r.images[i].p_malignant / 3;
    for (const auto& r : alone) squares += std::pow(r.images[i].p_malignant - mean, 2);
    EXPECT_NEAR(ensemble.images[i].p_malignant, mean, 1e-6) << ensemble.images[i].name;
    EXPECT_NEAR(ensemble.images[i].member_sd, std::sqrt(squares / 2), 1e-6);
    members_disagree = members_disagree || ensemble.images[i].member_sd > 1e-3;
    EXPECT_EQ(alone[0].images[i].member_sd, 0.0);
  }
  EXPECT_TRUE(members_disagree) << "members with other weights must predict differently";
  const std::string csv = ensemble.images_csv();
  EXPECT_EQ(csv.rfind("image,patient,label,crops,p_malignant,prediction,member_sd\n", 0), 0u);
  EXPECT_EQ(alone[0].images_csv().find("member_sd"), std::string::npos);

  // The same model twice is that model, with no disagreement.
  const EvalReport twice = evaluate({all.members[0], all.members[0]}, set, norm);
  for (size_t i = 0; i < twice.crops.size(); ++i)
    EXPECT_NEAR(twice.crops[i].p_malignant, alone[0].crops[i].p_malignant, 1e-6);
  for (const auto& v : twice.images) EXPECT_NEAR(v.member_sd, 0.0, 1e-9);
}

// Each member's temperature tempers its own probabilities before the mean;
// the raw mean and the log-odds stay what the members said.
TEST(EnsembleEvaluation, EachMembersTemperatureTempersItsOwnProbabilities) {
  const ExampleSet set = random_examples();
  const std::vector<ModelFile> models = {member(1), member(2)};
  const PredictionSteps all = compile_for_prediction(cpu_device(), models, 5);
  const Normalization norm = models[0].normalization;
  const EvalReport a = evaluate(*all.members[0], set, norm);
  const EvalReport b = evaluate(*all.members[1], set, norm);
  EvalOptions options;
  options.temperings = {{2.0}, {0.5}};
  options.calibration = true;
  const EvalReport both = evaluate(all.members, set, norm, nullptr, options);
  ASSERT_EQ(both.crops.size(), set.examples.size());
  for (size_t i = 0; i < both.crops.size(); ++i) {
    const double pa = a.crops[i].p_malignant, pb = b.crops[i].p_malignant;
    const double want =
        (tempered_p_malignant(1 - pa, pa, 2.0) + tempered_p_malignant(1 - pb, pb, 0.5)) / 2;
    EXPECT_NEAR(both.crops[i].p_malignant, want, 1e-5) << "crop " << i;
    EXPECT_NEAR(both.raw_crops[i].p_malignant, (pa + pb) / 2, 1e-6) << "crop " << i;
    EXPECT_NEAR(both.crop_log_odds[i], std::log((pa + pb) / (2 - pa - pb)), 1e-4);
  }
  EXPECT_EQ(both.calibration["temperatures"], nlohmann::json({2.0, 0.5}));
  EXPECT_TRUE(both.calibration["uncalibrated"]["per_crop"]["ece"].is_number());
  // One member alone: tempering never changes which class a crop gets.
  options.temperings = {{3.0}};
  const EvalReport soft = evaluate(*all.members[0], set, norm, nullptr, options);
  for (size_t i = 0; i < soft.crops.size(); ++i)
    EXPECT_EQ(soft.crops[i].p_malignant >= 0.5, a.crops[i].p_malignant >= 0.5) << "crop " << i;
  EXPECT_EQ(soft.per_crop.accuracy, a.per_crop.accuracy);
  EXPECT_EQ(soft.per_crop.auc, a.per_crop.auc);
  EXPECT_FALSE(a.to_json().contains("calibration"));
  options.temperings = {{}, {}, {}};  // one per member, or an error
  EXPECT_THROW(evaluate(all.members, set, norm, nullptr, options), Error);
}

// The command line: train --ensemble, eval and predict of the ensemble,
// resume, and the refusals.
TEST(EnsembleCli, MembersTrainOnSharedDataEvalAveragesThemAndResumeContinuesEach) {
  using testing::run;
  TempDir dir;
  const std::string data = dir / "synthetic";
  ASSERT_EQ(run("synth -o " + data +
                " --images 16 --per-patient 2 --width 200 --height 150 "
                "--seed 4")
                .status,
            0);
  const std::string train = "train --data " + data +
                            " --size 32 --crop 96 --batch 20 --crops-benign 100 "
                            "--crops-malignant 100 --folds 4 --threads 1 --no-progress "
                            "--stain-normalize macenko --select-by image_auc --seed 3 --fold ";
  const testing::CommandResult r = run(train + "1 --epochs 2 --ensemble 2 -o " + (dir / "ens"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ensemble member 2/2 (seed 4)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ensemble of 2 (model.safetensors): val acc"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("ensemble of 2 (model.best.safetensors): val acc"), std::string::npos)
      << r.output;
  const auto metrics = nlohmann::json::parse(read_file(dir / "ens/metrics.json"));
  EXPECT_EQ(metrics["ensemble"], 2);
  EXPECT_EQ(metrics["members"][1]["seed"], 4);
  EXPECT_EQ(metrics["validation"]["members"], 2);
  EXPECT_EQ(metrics["best_validation"]["members"], 2);
  const std::vector<ModelFile> members = load_models(dir / "ens/model.safetensors");
  ASSERT_EQ(members.size(), 2u);
  EXPECT_EQ(load_models(dir / "ens/model.best.safetensors").size(), 2u);
  EXPECT_EQ(members[1].trained["seed"], 4);
  ASSERT_TRUE(members[0].stain_target.has_value());

  // Member 1 is exactly the network a lone training with its seed gives:
  // sharing the prepared data changes nothing.
  ASSERT_EQ(run(train + "1 --epochs 2 -o " + (dir / "alone")).status, 0);
  EXPECT_EQ(load_model_file(dir / "alone/model.safetensors").params.values,
            members[0].params.values);
  EXPECT_EQ(load_model_file(dir / "ens/member1/model.safetensors").params.values,
            members[0].params.values);

  // eval: the held-out fold of the members, their mean, their disagreement.
  const testing::CommandResult e = run("eval --data " + data + " --threads 1 -m " +
                                       (dir / "ens/model.safetensors") + " -o " + (dir / "e.json"));
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("held-out fold 1 of 4"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("(mean of 2 models)"), std::string::npos) << e.output;
  const auto report = nlohmann::json::parse(read_file(dir / "e.json"));
  EXPECT_EQ(report["members"], 2);
  EXPECT_EQ(read_file(dir / "e.images.csv")
                .rfind("image,patient,label,crops,p_malignant,prediction,member_sd\n", 0),
            0u);
  // Several -m: the members' files give the same report as the ensemble file.
  const testing::CommandResult e2 =
      run("eval --data " + data + " --threads 1 -m " + (dir / "ens/member1/model.safetensors") +
          " -m " + (dir / "ens/member2/model.safetensors") + " -o " + (dir / "e2.json"));
  ASSERT_EQ(e2.status, 0) << e2.output;
  EXPECT_EQ(read_file(dir / "e2.images.csv"), read_file(dir / "e.images.csv"));

  // predict: image files after -m are images, not more models.
  const testing::CommandResult p = run("predict -m " + (dir / "ens/model.safetensors") + " " +
                                       data + "/train_1.png " + data + "/train_2.png");
  ASSERT_EQ(p.status, 0) << p.output;
  EXPECT_EQ(p.output.rfind("image,p_malignant,prediction,member_sd,refer\n", 0), 0u) << p.output;
  EXPECT_NE(p.output.find("train_2.png,"), std::string::npos) << p.output;
  // Members that disagree by more than --refer-spread send the image on.
  const testing::CommandResult strict =
      run("predict --refer-spread 0 -m " + (dir / "ens/model.safetensors") + " " + data +
          "/train_2.png");
  ASSERT_EQ(strict.status, 0) << strict.output;
  EXPECT_NE(strict.output.find("disagree\n"), std::string::npos) << strict.output;

  // Resume: each member continues its own checkpoint.
  const testing::CommandResult again =
      run(train + "1 --epochs 3 --ensemble 2 --resume -o " + (dir / "ens"));
  ASSERT_EQ(again.status, 0) << again.output;
  for (const char* m : {"member1", "member2"}) {
    const auto history = nlohmann::json::parse(
        read_file(dir / "ens/" + std::string(m) + "/metrics.json"))["history"];
    EXPECT_EQ(history.size(), 3u) << m;
  }
  EXPECT_NE(again.output.find("resumed from"), std::string::npos) << again.output;

  // Refusals, one line each, nothing half-written.
  ASSERT_EQ(run(train + "2 --epochs 1 -o " + (dir / "fold2")).status, 0);
  // Raw pixels, no stain normalisation: models of two folds read images alike.
  const std::string raw = "train --data " + data +
                          " --size 32 --crop 96 --batch 20 --crops-benign 40 --crops-malignant 40 "
                          "--folds 4 --threads 1 --no-progress --no-normalize --epochs 1 ";
  ASSERT_EQ(run(raw + "--fold 1 -o " + (dir / "raw1")).status, 0);
  ASSERT_EQ(run(raw + "--fold 2 -o " + (dir / "raw2")).status, 0);
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {train + "1 --epochs 1 --init " + (dir / "ens/model.safetensors") + " -o " +
                (dir / "init"),
            "ens/model.safetensors: an ensemble of several models; this needs one"},
           {"eval --data " + data + " -m " + (dir / "ens/model.safetensors") + " -m " +
                (dir / "fold2/model.safetensors"),
            "fold2/model.safetensors: reads images differently from"},
           {"eval --data " + data + " -m " + (dir / "raw1/model.safetensors") + " -m " +
                (dir / "raw2/model.safetensors"),
            "--model: the models were trained on different images ('fold' differs)"},
           {train + "1 --epochs 1 --ensemble 0 -o " + (dir / "zero"), "--ensemble"}}) {
    const testing::CommandResult bad = run(args);
    EXPECT_NE(bad.status, 0) << args;
    EXPECT_NE(bad.output.find(message), std::string::npos) << bad.output;
  }
}

}  // namespace
}  // namespace histocnn
