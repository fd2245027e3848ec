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
// log-odds before calibration, then each member's calibrated P(malignant).
constexpr size_t kRecordHead = 3;

std::vector<double> predict_records(const std::vector<TrainingStep*>& members,
                                    const ExampleSet& set, const Normalization& normalization,
                                    int rank, int ranks, const EvalOptions& options) {
  std::vector<double> temperatures = options.temperatures;
  if (temperatures.empty()) temperatures.assign(members.size(), 1.0);
  MemberPredictor predictor(members, temperatures, set.width, set.height, options.tta);
  std::vector<int> order;
  for (int i = rank; i < int(set.examples.size()); i += ranks) order.push_back(i);
  BatchLoader loader(set, order, predictor.batch(), AugmentOptions{}, 0, 1, 4, normalization);
  std::vector<double> mine;
  for (Batch b; loader.next(b);) {
    predictor.predict(b.images.data(), b.count);
    for (int i = 0; i < b.count; ++i) {
      mine.push_back(double(b.example_ids[size_t(i)]));
      mine.push_back(predictor.mean_raw_p_malignant(i));
      mine.push_back(predictor.raw_log_odds(i));
      for (int m = 0; m < predictor.members(); ++m) mine.push_back(predictor.p_malignant(i, m));
    }
  }
  return mine;
}

// Crops, images (with the members' spread) and patients from every process's
// records, and their metrics.
EvalReport report_of(const std::vector<double>& all, const ExampleSet& set, size_t count) {
  EvalReport r;
  r.members = int(count);
  std::vector<std::string>& image_of = r.crop_images;
  std::vector<std::string>& patient_of = r.crop_patients;
  std::map<std::string, size_t> verdict_of;
  std::vector<std::vector<double>> member_sums;  // per image, per member: sum over crops
  for (size_t at = 0; at + kRecordHead + count <= all.size(); at += kRecordHead + count) {
    const Example& ex = set.examples[size_t(all[at])];
    const SlideImage& im = set.images[size_t(ex.image_index)];
    const double* member_p = &all[at + kRecordHead];
    double p = 0;
    for (size_t m = 0; m < count; ++m) p += member_p[m];
    r.crops.push_back({float(p / double(count)), ex.label});
    r.raw_crops.push_back({float(all[at + 1]), ex.label});
    r.crop_log_odds.push_back(all[at + 2]);
    image_of.push_back(im.name);
    patient_of.push_back(im.patient);
    auto [it, added] = verdict_of.emplace(im.name, r.images.size());
    if (added) {
      r.images.push_back({im.name, im.patient, im.label, 0, 0.0, 0.0});
      member_sums.emplace_back(count, 0.0);
    }
    ImageVerdict& v = r.images[it->second];
    v.crops++;
    v.p_malignant += r.crops.back().p_malignant;
    for (size_t m = 0; m < count; ++m) member_sums[it->second][m] += member_p[m];
    r.crop_origins.push_back({ex.image_index, {ex.x, ex.y}});
  }
  for (size_t i = 0; i < r.images.size(); ++i) {
    ImageVerdict& v = r.images[i];
    v.p_malignant /= v.crops;
    for (double& s : member_sums[i]) s /= v.crops;  // each member's image P(malignant)
    v.member_sd = member_spread(member_sums[i]);
  }
  std::sort(r.images.begin(), r.images.end(),
            [](const ImageVerdict& a, const ImageVerdict& b) { return a.name < b.name; });
  r.per_crop = compute_metrics(r.crops);
  r.per_image = compute_metrics(aggregate(r.crops, image_of));
  r.patients = aggregate(r.crops, patient_of);
  r.per_patient = compute_metrics(r.patients);
  return r;
}

// Expected calibration error and reliability per crop and image; with a
// temperature other than 1, the same before calibration too.
nlohmann::json calibration_of(const EvalReport& r, const std::vector<double>& temperatures) {
  nlohmann::json j = {{"per_crop", calibration_json(r.crops)},
                      {"per_image", calibration_json(aggregate(r.crops, r.crop_images))}};
  const bool tempered =
      std::any_of(temperatures.begin(), temperatures.end(), [](double t) { return t != 1.0; });
  if (tempered) {
    j["temperatures"] = temperatures;
    j["uncalibrated"] = {{"per_crop", calibration_json(r.raw_crops)},
                         {"per_image", calibration_json(aggregate(r.raw_crops, r.crop_images))}};
  }
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
  require(options.temperatures.empty() || options.temperatures.size() == members.size(),
          "evaluate: one temperature per member");
  const std::vector<double> mine =
      predict_records(members, set, normalization, rank, ranks, options);
  const std::vector<double> all = comm ? comm->gather(mine) : mine;
  if (rank != 0) return {};
  EvalReport r = report_of(all, set, members.size());
  r.tta = options.tta;
  if (options.calibration) r.calibration = calibration_of(r, options.temperatures);
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
  return j;
}

std::string EvalReport::crops_csv(const ExampleSet& set) const {
  std::string csv = "image,patient,label,x,y,p_malignant\n";
  for (size_t k = 0; k < crops.size(); ++k) {
    const SlideImage& im = set.images[size_t(crop_origins[k].first)];
    char line[96];
    std::snprintf(line, sizeof line, ",%d,%d,%.6f\n", crop_origins[k].second.first,
                  crop_origins[k].second.second, crops[k].p_malignant);
    csv += csv_field(im.name) + "," + csv_field(im.patient) + "," +
           (im.label ? "malignant" : "benign") + line;
  }
  return csv;
}

std::string EvalReport::images_csv() const {
  const bool ensemble = members > 1;
  std::string csv = std::string("image,patient,label,crops,p_malignant,prediction") +
                    (ensemble ? ",member_sd\n" : "\n");
  for (const auto& v : images) {
    char line[64], spread[32] = "";
    std::snprintf(line, sizeof line, ",%d,%.6f,", v.crops, v.p_malignant);
    if (ensemble) std::snprintf(spread, sizeof spread, ",%.6f", v.member_sd);
    csv += csv_field(v.name) + "," + csv_field(v.patient) + "," +
           (v.label ? "malignant" : "benign") + line +
           (v.p_malignant >= 0.5 ? "malignant" : "benign") + spread + "\n";
  }
  return csv;
}

}  // namespace histocnn
