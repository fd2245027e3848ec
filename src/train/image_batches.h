// Images read for prediction in batches: each decoded, stain-normalised as
// the model was trained, cut into its prediction crops (train/explain.h) and
// turned into network input, image after image. `predict` hands these to
// the device through core/read_ahead.h: filled by reader threads ahead of a
// GPU, or on a CPU by the compute team itself, the images of a batch split
// over its threads (as data/loader.h does for training batches).
#pragma once

#include <exception>
#include <string>
#include <vector>

#include "data/image.h"
#include "train/checkpoint.h"
#include "train/explain.h"

namespace histocnn {

// One image as it was prepared: its crops and their input, the image itself
// when kept, or what stopped it (a corrupt file).
struct PreparedImage {
  std::vector<CropBox> boxes;
  std::vector<float> input;  // boxes.size() x 3 x height x width
  Image image;               // stain-normalised; empty unless kept
  std::exception_ptr error;
};

// A run of consecutive images. Buffers keep their capacity from one use of
// the batch to the next.
struct ImageBatch {
  size_t first = 0;                   // the index of its first image
  std::vector<PreparedImage> images;  // those read, in order
  size_t ready = 0;                   // images before the first that failed
  std::vector<float> input;           // the ready images' crops, image after image
  int rows = 0;                       // crops in `input`
  std::exception_ptr error;           // the failed image's, raised after the ready ones' rows
};

struct ImageBatchReader {
  const ModelFile& model;
  const std::vector<std::string>& paths;
  int tiles = 3;  // prediction_crops' tiles per side
  size_t images_per_batch = 1;
  bool keep_images = false;  // for --explain
  bool on_team = false;      // the images of a batch split over the caller's OpenMP team

  // Batch `id`: images [id * images_per_batch, ...) of `paths`.
  // ensures: b.ready images prepared in order and their crops in b.input;
  //          b.error set when image b.first + b.ready could not be.
  void operator()(int64_t id, ImageBatch& b) const;

  // One image, prepared into `out` (throws what reading it throws).
  void prepare(const std::string& path, PreparedImage& out) const;
};

}  // namespace histocnn
