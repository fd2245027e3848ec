#include "train/image_batches.h"

#include <algorithm>

#include "data/stain.h"

namespace histocnn {

void ImageBatchReader::prepare(const std::string& path, PreparedImage& out) const {
  const size_t plane = size_t(3) * model.width * model.height;
  out.error = nullptr;
  Image image = load_image(path);
  if (model.stain_target)
    image = normalize_stains(image, *model.stain_target, model.stain_recipe());
  out.boxes = prediction_crops(image.width, image.height, model, tiles, path);
  out.input.resize(plane * out.boxes.size());
  for (size_t k = 0; k < out.boxes.size(); ++k)
    crop_input(image, out.boxes[k], model, out.input.data() + plane * k);
  out.image = keep_images ? std::move(image) : Image{};
}

void ImageBatchReader::operator()(int64_t id, ImageBatch& b) const {
  b.first = size_t(id) * images_per_batch;
  const int count = int(std::min(paths.size(), b.first + images_per_batch) - b.first);
  b.images.resize(size_t(count));
  // An exception must not leave an OpenMP region: each image keeps its own.
  // Dynamic: images differ in size and in how long their file takes to read.
#pragma omp parallel for schedule(dynamic) if (on_team && count > 1)
  for (int k = 0; k < count; ++k) {
    try {
      prepare(paths[b.first + size_t(k)], b.images[size_t(k)]);
    } catch (...) {
      b.images[size_t(k)].error = std::current_exception();
    }
  }
  b.input.clear();
  b.rows = 0;
  b.error = nullptr;
  for (b.ready = 0; b.ready < b.images.size(); ++b.ready) {
    const PreparedImage& image = b.images[b.ready];
    if (image.error) {
      b.error = image.error;
      break;
    }
    b.input.insert(b.input.end(), image.input.begin(), image.input.end());
    b.rows += int(image.boxes.size());
  }
}

}  // namespace histocnn
