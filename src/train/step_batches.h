// A loader's batches into a training step: which form of images the loader
// should make for the step, and the call that trains on either form.
#pragma once

#include <vector>

#include "backends/backend.h"
#include "data/augment.h"
#include "data/loader.h"

namespace histocnn {

// Bytes where the step expands them itself (the CUDA step) and the
// augmentation can travel as bytes (no HED jitter); floats otherwise, and
// when `floats_only` (the A/B measurement of the two routes).
inline ImageForm image_form_for(const TrainingStep& step, const AugmentOptions& augment,
                                bool floats_only = false) {
  return !floats_only && step.takes_byte_images() && bytes_carry(augment) ? ImageForm::kBytes
                                                                          : ImageForm::kFloats;
}

// The form for prediction by `members` (evaluation, slides): bytes where
// every member expands them itself, floats otherwise. Prediction augments
// nothing, so bytes always carry it.
inline ImageForm prediction_form(const std::vector<TrainingStep*>& members) {
  for (const TrainingStep* m : members)
    if (!m->takes_byte_images()) return ImageForm::kFloats;
  return members.empty() ? ImageForm::kFloats : ImageForm::kBytes;
}

// One training step on a loader's batch, in the form it holds.
inline StepResult train_on(TrainingStep& step, const Batch& batch,
                           const BatchSlice& slice = BatchSlice{}) {
  if (batch.as_bytes())
    return step.train_bytes(batch.byte_images(), batch.labels.data(), batch.count, slice);
  return step.train_slice(batch.images.data(), batch.labels.data(), batch.count, slice);
}

}  // namespace histocnn
