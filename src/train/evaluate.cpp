#include "train/evaluate.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "data/loader.h"

namespace histocnn {

namespace {
// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}
}  // namespace

EvalReport evaluate(TrainingStep& step, const ExampleSet& set, const Normalization& normalization,
                    Communicator* comm, const EvalOptions& options) {
  const int batch = step.shape().batch;
  const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->size() : 1;
  std::vector<int> order;
  for (int i = rank; i < int(set.examples.size()); i += ranks) order.push_back(i);
  BatchLoader loader(set, order, batch, AugmentOptions{}, 0, 1, 4, normalization);
  std::vector<float> probs(size_t(batch) * 2), transformed;
  std::vector<double> mine;  // (example, P(malignant)) pairs
  const int transforms = options.tta ? dihedral_count(set.width, set.height) : 1;
  const size_t per = size_t(3) * set.width * set.height;
  std::vector<double> sum(static_cast<size_t>(batch));
  for (Batch b; loader.next(b);) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int k = 0; k < transforms; ++k) {
      const float* input = b.images.data();
      if (k > 0) {
        transformed.resize(per * size_t(b.count));
        for (int i = 0; i < b.count; ++i)
          dihedral_chw(b.images.data() + per * i, transformed.data() + per * i, 3, set.width,
                       set.height, k);
        input = transformed.data();
      }
      step.predict(input, b.count, probs.data());
      for (int i = 0; i < b.count; ++i) sum[size_t(i)] += probs[2 * i + 1];
    }
    for (int i = 0; i < b.count; ++i)
      mine.insert(mine.end(), {double(b.example_ids[size_t(i)]), sum[size_t(i)] / transforms});
  }
  const std::vector<double> all = comm ? comm->gather(mine) : mine;
  if (rank != 0) return {};
  std::vector<Prediction> crops;
  std::vector<std::string> image_of, patient_of;
  for (size_t k = 0; k + 1 < all.size(); k += 2) {
    const Example& ex = set.examples[size_t(all[k])];
    crops.push_back({float(all[k + 1]), ex.label});
    image_of.push_back(set.images[ex.image_index].name);
    patient_of.push_back(set.images[ex.image_index].patient);
  }
  EvalReport r;
  r.tta = options.tta;
  std::map<std::string, size_t> verdict_of;
  for (size_t k = 0; k < crops.size(); ++k) {
    const Example& ex = set.examples[size_t(all[2 * k])];
    const SlideImage& im = set.images[size_t(ex.image_index)];
    auto [it, added] = verdict_of.emplace(im.name, r.images.size());
    if (added) r.images.push_back({im.name, im.patient, im.label, 0, 0.0});
    ImageVerdict& v = r.images[it->second];
    v.crops++;
    v.p_malignant += crops[k].p_malignant;
    r.crop_origins.push_back({ex.image_index, {ex.x, ex.y}});
  }
  for (auto& v : r.images) v.p_malignant /= v.crops;
  std::sort(r.images.begin(), r.images.end(),
            [](const ImageVerdict& a, const ImageVerdict& b) { return a.name < b.name; });
  r.crops = crops;
  r.per_crop = compute_metrics(crops);
  r.per_image = compute_metrics(aggregate(crops, image_of));
  r.patients = aggregate(crops, patient_of);
  r.per_patient = compute_metrics(r.patients);
  return r;
}

nlohmann::json EvalReport::to_json() const {
  return {{"per_crop", per_crop.to_json()},
          {"per_image", per_image.to_json()},
          {"per_patient", per_patient.to_json()},
          {"tta", tta}};
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
  std::string csv = "image,patient,label,crops,p_malignant,prediction\n";
  for (const auto& v : images) {
    char line[64];
    std::snprintf(line, sizeof line, ",%d,%.6f,", v.crops, v.p_malignant);
    csv += csv_field(v.name) + "," + csv_field(v.patient) + "," +
           (v.label ? "malignant" : "benign") + line +
           (v.p_malignant >= 0.5 ? "malignant" : "benign") + "\n";
  }
  return csv;
}

}  // namespace histocnn
