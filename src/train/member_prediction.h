// Class probabilities from the models a prediction averages (one model, or an
// ensemble's members), with test-time augmentation and each member's
// temperature (train/temperature.h). eval, predict and slide all score
// through it, so they average, augment and calibrate alike.
//
// Order: each member's probabilities are averaged over the dihedral
// transforms first (TTA), then tempered by that member's temperature, then
// averaged over the members. Without TTA, tempering a forward's softmax is
// exactly softmax(logits / T).
//
// K classes: P(malignant) is the binary view, the sum of the probabilities
// of the classes marked malignant (data/labels.h), after tempering.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backends/backend.h"
#include "train/temperature.h"

namespace histocnn {

// The width of members' features placed side by side, as MemberPredictor
// joins them (and a slide model reads them): their feature_width()s summed.
int summed_feature_width(const std::vector<TrainingStep*>& members);

class MemberPredictor {
 public:
  // requires: members non-empty, all compiled for one batch size, class
  //           count and a width x height input; one tempering (finite
  //           temperatures > 0) per member; `malignant` one flag per class (empty: two classes,
  //           benign and malignant).
  MemberPredictor(std::vector<TrainingStep*> members, std::vector<Tempering> temperings, int width,
                  int height, bool tta, std::vector<bool> malignant = {});

  // Predicts `count` rows (1..batch) of normalised 3 x height x width inputs.
  // ensures: the accessors below describe these rows until the next call;
  //          with_features: features(r) too.
  void predict(const float* input, int count, bool with_features = false);
  // The same rows as bytes and lookup tables (core/byte_images.h): the same
  // results, bit for bit, as predict() on their expansion (the transforms
  // move the bytes; a table does not depend on the pixel). A member that
  // takes_byte_images() (the CUDA step) gets the bytes, a quarter of the
  // floats' size, and expands them itself; the others expand them on the host
  // (prediction_form, train/step_batches.h, says which form to make).
  void predict(const ByteImages& input, int count, bool with_features = false);

  int members() const { return int(members_.size()); }
  int batch() const { return members_.front()->shape().batch; }
  int classes() const { return classes_; }
  // Member m's P(malignant) for row r before calibration (mean over transforms).
  double raw_p_malignant(int r, int m) const;
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
  // Every class's probability for row r: the members' mean after their
  // temperatures.
  std::vector<double> class_probs(int r) const;
  // log of the members' mean class probabilities before calibration (log 0
  // as -200): what a K-class temperature is fitted on.
  std::vector<double> raw_log_probs(int r) const;
  // Row r's features (TrainingStep::predict_features) of the last
  // predict(with_features): each member's mean over the transforms, the
  // members side by side (their features are not comparable, so never
  // averaged): feature_width() values.
  int feature_width() const { return feature_width_; }
  std::vector<float> features(int r) const;

 private:
  size_t index(int r, int m) const {
    return (size_t(r) * members_.size() + size_t(m)) * size_t(classes_);
  }
  // One transform's pass over the members: `run` predicts with one member
  // (its probabilities into probs_, its features, when not null, into the
  // given rows), then the results are added in as 1 / transforms of each.
  using MemberRun = std::function<void(TrainingStep&, float* probs, float* features)>;
  void begin(int count, bool with_features);
  void add_transform(int count, bool with_features, const MemberRun& run);
  std::vector<double> raw_probs(int r, int m) const;  // member m, before its temperature
  std::vector<double> tempered(int r, int m) const;   // the same after it
  double malignant_sum(const std::vector<double>& probs) const;
  std::vector<TrainingStep*> members_;
  std::vector<Tempering> temperings_;
  int width_, height_, transforms_, classes_;
  std::vector<bool> malignant_;
  std::vector<float> probs_, transformed_;
  std::vector<uint8_t> transformed_bytes_;  // TTA of byte input: the transformed pixels
  std::vector<double> raw_;                 // [row][member][class]
  int feature_width_ = 0;                   // summed over the members
  std::vector<float> member_features_;      // one member's call: [row][its width]
  std::vector<double> features_;            // [row][feature_width_]
};

// The sample standard deviation of the members' P(malignant) for one image
// or tile: how much they disagree (0 with fewer than two members).
double member_spread(const std::vector<double>& p_per_member);

}  // namespace histocnn
