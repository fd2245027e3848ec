#include "train/member_prediction.h"

#include <cmath>

#include "core/error.h"
#include "data/augment.h"
#include "train/temperature.h"

namespace histocnn {

MemberPredictor::MemberPredictor(std::vector<TrainingStep*> members,
                                 std::vector<Tempering> temperings, int width, int height, bool tta,
                                 std::vector<bool> malignant)
    : members_(std::move(members)),
      temperings_(std::move(temperings)),
      width_(width),
      height_(height),
      transforms_(tta ? dihedral_count(width, height) : 1),
      classes_(0),
      malignant_(std::move(malignant)) {
  require(!members_.empty(), "no model to predict with");
  require(temperings_.size() == members_.size(), "one tempering per member");
  classes_ = members_.front()->shape().classes();
  for (TrainingStep* m : members_) {
    require(m->shape().batch == batch(), "an ensemble's members differ in batch size");
    require(m->shape().classes() == classes_, "an ensemble's members differ in classes");
  }
  if (malignant_.empty()) malignant_ = {false, true};
  require(int(malignant_.size()) == classes_, "the network has " + std::to_string(classes_) +
                                                  " classes but its label scheme " +
                                                  std::to_string(malignant_.size()));
  probs_.resize(size_t(batch()) * size_t(classes_));
  raw_.resize(size_t(batch()) * members_.size() * size_t(classes_));
  feature_width_ = summed_feature_width(members_);
}

int summed_feature_width(const std::vector<TrainingStep*>& members) {
  int width = 0;
  for (const TrainingStep* m : members) width += m->feature_width();
  return width;
}

void MemberPredictor::predict(const float* input, int count, bool with_features) {
  begin(count, with_features);
  const size_t plane = size_t(3) * width_ * height_;
  for (int k = 0; k < transforms_; ++k) {
    if (k > 0) transformed_.resize(plane * size_t(batch()));
    for (int r = 0; r < count && k > 0; ++r)
      dihedral_chw(input + plane * r, transformed_.data() + plane * r, 3, width_, height_, k);
    const float* x = k ? transformed_.data() : input;
    add_transform(count, with_features, [&](TrainingStep& member, float* probs, float* features) {
      if (features)
        member.predict_features(x, count, probs, features);
      else
        member.predict(x, count, probs);
    });
  }
}

void MemberPredictor::predict(const ByteImages& input, int count, bool with_features) {
  begin(count, with_features);
  const size_t pixels = size_t(3) * width_ * height_;
  for (int k = 0; k < transforms_; ++k) {
    if (k > 0) transformed_bytes_.resize(pixels * size_t(batch()));
    for (int r = 0; r < count && k > 0; ++r)
      dihedral_hwc(input.pixels + pixels * r, transformed_bytes_.data() + pixels * r, width_,
                   height_, k);
    const ByteImages x{k ? transformed_bytes_.data() : input.pixels, input.tables};
    add_transform(count, with_features, [&](TrainingStep& member, float* probs, float* features) {
      member.predict_bytes(x, count, probs, features);
    });
  }
}

void MemberPredictor::begin(int count, bool with_features) {
  require(count >= 1 && count <= batch(), "predict: count must be 1..batch");
  std::fill(raw_.begin(), raw_.end(), 0.0);
  features_.assign(with_features ? size_t(count) * size_t(feature_width_) : 0, 0.0);
}

void MemberPredictor::add_transform(int count, bool with_features, const MemberRun& run) {
  int column = 0;  // member m's first feature
  for (int m = 0; m < members(); ++m) {
    TrainingStep& member = *members_[size_t(m)];
    const int width = member.feature_width();
    if (with_features) member_features_.resize(size_t(count) * size_t(width));
    run(member, probs_.data(), with_features ? member_features_.data() : nullptr);
    for (int r = 0; r < count && with_features; ++r)
      for (int j = 0; j < width; ++j)
        features_[size_t(r) * size_t(feature_width_) + size_t(column + j)] +=
            double(member_features_[size_t(r) * size_t(width) + size_t(j)]) / transforms_;
    column += width;
    for (int r = 0; r < count; ++r)
      for (int c = 0; c < classes_; ++c)
        raw_[index(r, m) + size_t(c)] +=
            probs_[size_t(r) * size_t(classes_) + size_t(c)] / transforms_;
  }
}

std::vector<float> MemberPredictor::features(int r) const {
  require(size_t(r + 1) * size_t(feature_width_) <= features_.size(),
          "features: row " + std::to_string(r) + " was not predicted with features");
  const auto first = features_.begin() + std::ptrdiff_t(size_t(r) * size_t(feature_width_));
  return std::vector<float>(first, first + feature_width_);
}

std::vector<double> MemberPredictor::raw_probs(int r, int m) const {
  const auto first = raw_.begin() + std::ptrdiff_t(index(r, m));
  return std::vector<double>(first, first + classes_);
}

std::vector<double> MemberPredictor::tempered(int r, int m) const {
  // Two classes: tempered_probabilities takes the exact two-class form.
  return tempered_probabilities(raw_probs(r, m), temperings_[size_t(m)], malignant_);
}

double MemberPredictor::malignant_sum(const std::vector<double>& probs) const {
  double sum = 0;
  for (int c = 0; c < classes_; ++c)
    if (malignant_[size_t(c)]) sum += probs[size_t(c)];
  return sum;
}

double MemberPredictor::raw_p_malignant(int r, int m) const {
  return malignant_sum(raw_probs(r, m));
}

double MemberPredictor::p_malignant(int r, int m) const {
  return malignant_sum(tempered(r, m));
}

double MemberPredictor::mean_p_malignant(int r) const {
  double sum = 0;
  for (int m = 0; m < members(); ++m) sum += p_malignant(r, m);
  return sum / members();
}

double MemberPredictor::mean_raw_p_malignant(int r) const {
  double sum = 0;
  for (int m = 0; m < members(); ++m) sum += raw_p_malignant(r, m);
  return sum / members();
}

std::vector<double> MemberPredictor::member_p_malignant(int r) const {
  std::vector<double> p;
  for (int m = 0; m < members(); ++m) p.push_back(p_malignant(r, m));
  return p;
}

double MemberPredictor::raw_log_odds(int r) const {
  // Each side summed from its own classes' probabilities, not 1 - the other.
  double benign = 0, malignant = 0;
  for (int m = 0; m < members(); ++m)
    for (int c = 0; c < classes_; ++c)
      (malignant_[size_t(c)] ? malignant : benign) += raw_[index(r, m) + size_t(c)];
  return log_odds(benign, malignant);
}

std::vector<double> MemberPredictor::class_probs(int r) const {
  std::vector<double> mean(size_t(classes_), 0.0);
  for (int m = 0; m < members(); ++m) {
    const auto p = tempered(r, m);
    for (int c = 0; c < classes_; ++c) mean[size_t(c)] += p[size_t(c)] / members();
  }
  return mean;
}

std::vector<double> MemberPredictor::raw_log_probs(int r) const {
  std::vector<double> mean(size_t(classes_), 0.0);
  for (int m = 0; m < members(); ++m)
    for (int c = 0; c < classes_; ++c) mean[size_t(c)] += raw_[index(r, m) + size_t(c)] / members();
  for (double& x : mean) x = clamped_log(x);
  return mean;
}

double member_spread(const std::vector<double>& p) {
  if (p.size() < 2) return 0;
  double mean = 0, squares = 0;
  for (double v : p) mean += v / double(p.size());
  for (double v : p) squares += (v - mean) * (v - mean);
  return std::sqrt(squares / double(p.size() - 1));
}

}  // namespace histocnn
