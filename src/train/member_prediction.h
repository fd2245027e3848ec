// Class probabilities from the models a prediction averages (one model, or an
// ensemble's members), with test-time augmentation and each member's
// temperature (train/temperature.h). eval, predict and slide all score
// through it, so they average, augment and calibrate alike.
//
// Order: each member's probabilities are averaged over the dihedral
// transforms first (TTA), then tempered by that member's temperature, then
// averaged over the members. Without TTA, tempering a forward's softmax is
// exactly softmax(logits / T).
#pragma once

#include <vector>

#include "backends/backend.h"

namespace histocnn {

class MemberPredictor {
 public:
  // requires: members non-empty, all compiled for one batch size and a
  //           width x height input; one temperature (> 0) per member.
  MemberPredictor(std::vector<TrainingStep*> members, std::vector<double> temperatures, int width,
                  int height, bool tta);

  // Predicts `count` rows (1..batch) of normalised 3 x height x width inputs.
  // ensures: the accessors below describe these rows until the next call.
  void predict(const float* input, int count);

  int members() const { return int(members_.size()); }
  int batch() const { return members_.front()->shape().batch; }
  // Member m's P(malignant) for row r before calibration (mean over transforms).
  double raw_p_malignant(int r, int m) const { return raw_[index(r, m) + 1]; }
  // The same after member m's temperature.
  double p_malignant(int r, int m) const;
  // Mean over the members, after / before calibration.
  double mean_p_malignant(int r) const;
  double mean_raw_p_malignant(int r) const;
  // The members' calibrated P(malignant) for row r (for their spread).
  std::vector<double> member_p_malignant(int r) const;
  // log P(malignant) - log P(benign) of the members' mean before calibration:
  // what a temperature is fitted on (exact where the float softmax rounded
  // one probability to 1).
  double raw_log_odds(int r) const;

 private:
  size_t index(int r, int m) const { return (size_t(r) * members_.size() + size_t(m)) * 2; }
  std::vector<TrainingStep*> members_;
  std::vector<double> temperatures_;
  int width_, height_, transforms_;
  std::vector<float> probs_, transformed_;
  std::vector<double> raw_;  // [row][member] (P(benign), P(malignant))
};

// The sample standard deviation of the members' P(malignant) for one image
// or tile: how much they disagree (0 with fewer than two members).
double member_spread(const std::vector<double>& p_per_member);

}  // namespace histocnn
