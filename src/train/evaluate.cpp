#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "core/error.h"
#include "data/loader.h"
#include "train/bootstrap.h"
#include "train/calibration.h"
#include "train/member_prediction.h"
#include "train/step_batches.h"

namespace histocnn {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

EvalReport evaluate(TrainingStep& step, const ExampleSet& set, const Normalization& normalization,
                    Communicator* comm, const EvalOptions& options) {
  return evaluate(std::vector<TrainingStep*>{&step}, set, normalization, comm, options);
}

namespace {

// One record per crop of this process's share of the examples (every
// ranks-th from rank): example index, the members' mean P(malignant) and
// log-odds before calibration, each member's calibrated P(malignant), then
// the calibrated class probabilities and the log class probabilities before
// calibration.
constexpr size_t kRecordHead = 3;
size_t record_size(size_t members, size_t classes) {
  return kRecordHead + members + 2 * classes;
}

std::vector<double> predict_records(const std::vector<TrainingStep*>& members,
                                    const ExampleSet& set, const Normalization& normalization,
                                    int rank, int ranks, const EvalOptions& options) {
  std::vector<Tempering> temperings = options.temperings;
  if (temperings.empty()) temperings.assign(members.size(), Tempering{});
  MemberPredictor predictor(members, temperings, set.width, set.height, options.tta,
                            options.labels.malignant);
  std::vector<int> order;
  for (int i = rank; i < int(set.examples.size()); i += ranks) order.push_back(i);
  BatchPool own;
  BatchPool& buffers = options.batch_buffers ? *options.batch_buffers : own;
  buffers.use_source(members.size() == 1 ? members.front()->input_buffers() : nullptr,
                     prediction_form(members));
  BatchLoader loader(set, order, predictor.batch(), AugmentOptions{}, 0, options.loader_workers, 4,
                     normalization, &buffers);
  std::vector<double> mine;
  for (Batch b; loader.next(b);) {
    if (b.as_bytes())
      predictor.predict(b.byte_images(), b.count);
    else
      predictor.predict(b.images.data(), b.count);
    for (int i = 0; i < b.count; ++i) {
      mine.push_back(double(b.example_ids[size_t(i)]));
      mine.push_back(predictor.mean_raw_p_malignant(i));
      mine.push_back(predictor.raw_log_odds(i));
      for (int m = 0; m < predictor.members(); ++m) mine.push_back(predictor.p_malignant(i, m));
      for (double p : predictor.class_probs(i)) mine.push_back(p);
      for (double l : predictor.raw_log_probs(i)) mine.push_back(l);
    }
  }
  return mine;
}

// Each image's verdict: mean P(malignant) and class probabilities over its
// crops, and the members' spread of their own image P(malignant).
void finish_verdicts(EvalReport& r, std::vector<std::vector<double>>& member_sums) {
  for (size_t i = 0; i < r.images.size(); ++i) {
    ImageVerdict& v = r.images[i];
    v.p_malignant /= v.crops;
    for (double& p : v.class_probs) p /= v.crops;
    for (double& s : member_sums[i]) s /= v.crops;  // each member's image P(malignant)
    v.member_sd = member_spread(member_sums[i]);
  }
  std::sort(r.images.begin(), r.images.end(),
            [](const ImageVerdict& a, const ImageVerdict& b) { return a.name < b.name; });
}

void compute_level_metrics(EvalReport& r) {
  r.per_crop = compute_metrics(r.crops);
  r.per_image = compute_metrics(aggregate(r.crops, r.crop_images));
  r.patients = aggregate(r.crops, r.crop_patients);
  r.per_patient = compute_metrics(r.patients);
  const int k = int(r.class_names.size());
  r.class_per_crop = compute_class_metrics(r.class_crops, k);
  r.class_per_image = compute_class_metrics(aggregate_classes(r.class_crops, r.crop_images), k);
  r.class_per_patient = compute_class_metrics(aggregate_classes(r.class_crops, r.crop_patients), k);
}

// Crops, images (with the members' spread) and patients from every process's
// records, and their metrics.
EvalReport report_of(const std::vector<double>& all, const ExampleSet& set, size_t count,
                     const LabelScheme& labels) {
  EvalReport r;
  r.members = int(count);
  r.class_names = labels.classes;
  r.class_malignant = labels.malignant;
  const size_t k = size_t(labels.count()), size = record_size(count, k);
  std::map<std::string, size_t> verdict_of;
  std::vector<std::vector<double>> member_sums;  // per image, per member: sum over crops
  for (size_t at = 0; at + size <= all.size(); at += size) {
    const Example& ex = set.examples[size_t(all[at])];
    const SlideImage& im = set.images[size_t(ex.image_index)];
    const int malignant = labels.malignant[size_t(ex.label)] ? 1 : 0;
    const double* member_p = &all[at + kRecordHead];
    const double* class_p = member_p + count;
    double p = 0;
    for (size_t m = 0; m < count; ++m) p += member_p[m];
    r.crops.push_back({float(p / double(count)), malignant});
    r.raw_crops.push_back({float(all[at + 1]), malignant});
    r.crop_log_odds.push_back(all[at + 2]);
    r.class_crops.push_back({std::vector<double>(class_p, class_p + k), ex.label});
    r.crop_log_probs.emplace_back(class_p + k, class_p + 2 * k);
    r.crop_images.push_back(im.name);
    r.crop_patients.push_back(im.patient);
    auto [it, added] = verdict_of.emplace(im.name, r.images.size());
    if (added) {
      r.images.push_back(
          {im.name, im.patient, malignant, 0, 0.0, ex.label, std::vector<double>(k, 0.0), 0.0});
      member_sums.emplace_back(count, 0.0);
    }
    ImageVerdict& v = r.images[it->second];
    v.crops++;
    v.p_malignant += r.crops.back().p_malignant;
    for (size_t c = 0; c < k; ++c) v.class_probs[c] += class_p[c];
    for (size_t m = 0; m < count; ++m) member_sums[it->second][m] += member_p[m];
    r.crop_origins.push_back({ex.image_index, {ex.x, ex.y}});
  }
  finish_verdicts(r, member_sums);
  compute_level_metrics(r);
  return r;
}

// K classes: the confidence calibration (top probability against fraction
// right) per crop and image, and before the temperatures when there are any.
nlohmann::json class_calibration(const EvalReport& r, bool tempered) {
  const auto of = [&](const std::vector<ClassPrediction>& crops) {
    return nlohmann::json{
        {"per_crop", calibration_json(confidence_predictions(crops))},
        {"per_image",
         calibration_json(confidence_predictions(aggregate_classes(crops, r.crop_images)))}};
  };
  nlohmann::json j = of(r.class_crops);
  if (tempered) {
    std::vector<ClassPrediction> raw;
    for (size_t i = 0; i < r.class_crops.size(); ++i) {
      ClassPrediction p{{}, r.class_crops[i].label};
      for (double l : r.crop_log_probs[i]) p.probs.push_back(std::exp(l));
      raw.push_back(std::move(p));
    }
    j["uncalibrated"] = of(raw);
  }
  return j;
}

// Expected calibration error and reliability per crop and image; with a
// temperature other than 1, the same before calibration too.
nlohmann::json calibration_of(const EvalReport& r, const std::vector<Tempering>& temperings) {
  nlohmann::json j = {{"per_crop", calibration_json(r.crops)},
                      {"per_image", calibration_json(aggregate(r.crops, r.crop_images))}};
  const bool tempered = std::any_of(temperings.begin(), temperings.end(),
                                    [](const Tempering& t) { return !t.is_identity(); });
  if (tempered) {
    // Each member's temperature (the binary view's where grouped) and, where
    // any is grouped, each member's within-side temperature.
    std::vector<double> temperatures, within;
    for (const Tempering& t : temperings) temperatures.push_back(t.temperature);
    for (const Tempering& t : temperings) within.push_back(t.within);
    j["temperatures"] = temperatures;
    if (std::any_of(temperings.begin(), temperings.end(),
                    [](const Tempering& t) { return t.grouped; }))
      j["within_temperatures"] = within;
    j["uncalibrated"] = {{"per_crop", calibration_json(r.raw_crops)},
                         {"per_image", calibration_json(aggregate(r.raw_crops, r.crop_images))}};
  }
  if (r.class_names.size() > 2) j["classes"] = class_calibration(r, tempered);
  return j;
}

}  // namespace

EvalReport evaluate(const std::vector<TrainingStep*>& members, const ExampleSet& set,
                    const Normalization& normalization, Communicator* comm,
                    const EvalOptions& options) {
  require(!members.empty(), "evaluate: no model to evaluate");
  for (TrainingStep* m : members)
    require(m->shape().batch == members.front()->shape().batch,
            "evaluate: the ensemble's members differ in batch size");
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  require(options.temperings.empty() || options.temperings.size() == members.size(),
          "evaluate: one tempering per member");
  const std::vector<double> mine =
      predict_records(members, set, normalization, rank, ranks, options);
  const std::vector<double> all = comm ? comm->gather(mine) : mine;
  if (rank != 0) return {};
  require(options.labels.count() == members.front()->shape().classes(),
          "evaluate: the label scheme has " + std::to_string(options.labels.count()) +
              " classes but the network " + std::to_string(members.front()->shape().classes()));
  EvalReport r = report_of(all, set, members.size(), options.labels);
  r.tta = options.tta;
  if (options.calibration) r.calibration = calibration_of(r, options.temperings);
  if (options.bootstrap > 0)
    r.intervals = patient_bootstrap(r, options.bootstrap, options.bootstrap_seed).to_json();
  return r;
}

nlohmann::json EvalReport::to_json() const {
  nlohmann::json j = {{"per_crop", per_crop.to_json()},
                      {"per_image", per_image.to_json()},
                      {"per_patient", per_patient.to_json()},
                      {"tta", tta},
                      {"members", members}};
  if (!intervals.is_null()) j["intervals"] = intervals;
  if (!calibration.is_null()) j["calibration"] = calibration;
  if (class_names.size() > 2)
    j["classes"] = {{"names", class_names},
                    {"per_crop", class_per_crop.to_json(class_names)},
                    {"per_image", class_per_image.to_json(class_names)},
                    {"per_patient", class_per_patient.to_json(class_names)}};
  return j;
}

std::string EvalReport::crops_csv(const ExampleSet& set) const {
  std::string csv = "image,patient,label,x,y,p_malignant" + class_header();
  for (size_t k = 0; k < crops.size(); ++k) {
    const SlideImage& im = set.images[size_t(crop_origins[k].first)];
    char line[96];
    std::snprintf(line, sizeof line, ",%d,%d,%.6f", crop_origins[k].second.first,
                  crop_origins[k].second.second, crops[k].p_malignant);
    csv += csv_field(im.name) + "," + csv_field(im.patient) + "," +
           (crops[k].label ? "malignant" : "benign") + line +
           class_columns(class_crops[k].label, class_crops[k].probs);
  }
  return csv;
}

std::string EvalReport::class_header() const {
  if (class_names.size() <= 2) return "\n";
  std::string header = ",class,predicted_class";
  for (const auto& name : class_names) header += "," + csv_field("p_" + name);
  return header + "\n";
}

std::string EvalReport::class_columns(int label, const std::vector<double>& probs) const {
  if (class_names.size() <= 2) return "\n";
  const size_t predicted = size_t(std::max_element(probs.begin(), probs.end()) - probs.begin());
  std::string row =
      "," + csv_field(class_names[size_t(label)]) + "," + csv_field(class_names[predicted]);
  for (double p : probs) {
    char number[32];
    std::snprintf(number, sizeof number, ",%.6f", p);
    row += number;
  }
  return row + "\n";
}

std::string EvalReport::images_csv() const {
  const bool ensemble = members > 1;
  std::string csv = std::string("image,patient,label,crops,p_malignant,prediction") +
                    (ensemble ? ",member_sd" : "") + class_header();
  for (const auto& v : images) {
    char line[64], spread[32] = "";
    std::snprintf(line, sizeof line, ",%d,%.6f,", v.crops, v.p_malignant);
    if (ensemble) std::snprintf(spread, sizeof spread, ",%.6f", v.member_sd);
    csv += csv_field(v.name) + "," + csv_field(v.patient) + "," +
           (v.label ? "malignant" : "benign") + line +
           (v.p_malignant >= 0.5 ? "malignant" : "benign") + spread +
           class_columns(v.class_label, v.class_probs);
  }
  return csv;
}

}  // namespace histocnn
