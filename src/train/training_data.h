// What a training run reads before its first step: the images of the data
// selection (a split, a patient-grouped fold, or another split to validate
// on), their crops (stain-normalised per the options; with several processes
// each decodes its share and all exchange them) and the input normalisation.
#pragma once

#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "train/train_options.h"

namespace histocnn {

// What the selection evaluates, for titles: "glas-train, fold 1 of 5",
// "glas-train, split testA" or "glas-train, split train (all)".
std::string describe_evaluated(const DataSelection& selection);

// The selection's label scheme (--labels resolved against its Grade.csv or
// its class folders).
LabelScheme label_scheme_of(const DataSelection& selection);

// The images to train on and to validate on, per the selection; returns
// their label scheme (selection.labels resolved against the folder).
// `notes`, when given, receives what the user should know about how the
// folder was read (GlasFolder::notes).
LabelScheme select_images(const DataSelection& selection, std::vector<SlideImage>* train,
                          std::vector<SlideImage>* validation,
                          std::vector<std::string>* notes = nullptr);

// What training reads before the first step: the selected images, the crops
// (stain-normalised per the options), the validation crops and the input
// normalisation. It depends on the data, crop and normalisation options, not
// on the seed: an ensemble's members share one.
struct TrainingData {
  std::vector<SlideImage> train_images, val_images;
  LabelScheme labels;              // what the images' labels mean
  std::vector<std::string> notes;  // how the folder was read (select_images)
  CropOptions crops;               // the options' crops, with the stain target and class counts
  ExampleSet train_set, val_set;
  Normalization normalization;  // identity with --no-normalize
  double seconds = 0;           // time taken to prepare it
};
TrainingData prepare_training_data(const TrainOptions& options, Communicator& comm, int threads);

// The examples as one file other engines can read (bench/pytorch_train.py):
// a JSON header line, int32 labels, then uint8 NHWC pixels.
void export_examples(const ExampleSet& set, const std::string& path);

}  // namespace histocnn
