#include "train/member_prediction.h"

#include <cmath>

#include "core/error.h"
#include "data/augment.h"
#include "train/temperature.h"

namespace histocnn {

MemberPredictor::MemberPredictor(std::vector<TrainingStep*> members,
                                 std::vector<double> temperatures, int width, int height, bool tta)
    : members_(std::move(members)),
      temperatures_(std::move(temperatures)),
      width_(width),
      height_(height),
      transforms_(tta ? dihedral_count(width, height) : 1) {
  require(!members_.empty(), "no model to predict with");
  require(temperatures_.size() == members_.size(), "one temperature per member");
  for (TrainingStep* m : members_)
    require(m->shape().batch == batch(), "an ensemble's members differ in batch size");
  for (double t : temperatures_)
    require(t > 0 && std::isfinite(t), "a temperature must be a finite positive number");
  probs_.resize(size_t(batch()) * 2);
  if (transforms_ > 1) transformed_.resize(size_t(batch()) * 3 * width * height);
  raw_.resize(size_t(batch()) * members_.size() * 2);
}

void MemberPredictor::predict(const float* input, int count) {
  require(count >= 1 && count <= batch(), "predict: count must be 1..batch");
  const size_t plane = size_t(3) * width_ * height_;
  std::fill(raw_.begin(), raw_.end(), 0.0);
  for (int k = 0; k < transforms_; ++k) {
    for (int r = 0; r < count && k > 0; ++r)
      dihedral_chw(input + plane * r, transformed_.data() + plane * r, 3, width_, height_, k);
    const float* x = k ? transformed_.data() : input;
    for (int m = 0; m < members(); ++m) {
      members_[size_t(m)]->predict(x, count, probs_.data());
      for (int r = 0; r < count; ++r) {
        raw_[index(r, m)] += probs_[2 * size_t(r)] / transforms_;
        raw_[index(r, m) + 1] += probs_[2 * size_t(r) + 1] / transforms_;
      }
    }
  }
}

double MemberPredictor::p_malignant(int r, int m) const {
  return tempered_p_malignant(raw_[index(r, m)], raw_[index(r, m) + 1], temperatures_[size_t(m)]);
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
  double benign = 0, malignant = 0;
  for (int m = 0; m < members(); ++m)
    benign += raw_[index(r, m)], malignant += raw_[index(r, m) + 1];
  return log_odds(benign, malignant);
}

double member_spread(const std::vector<double>& p) {
  if (p.size() < 2) return 0;
  double mean = 0, squares = 0;
  for (double v : p) mean += v / double(p.size());
  for (double v : p) squares += (v - mean) * (v - mean);
  return std::sqrt(squares / double(p.size() - 1));
}

}  // namespace histocnn
