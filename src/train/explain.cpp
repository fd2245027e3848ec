#include "train/explain.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/augment.h"
#include "nn/grad_cam.h"

namespace histocnn {
namespace {

// The map's value at a crop pixel (px, py): bilinear over the map's cells,
// their centres spread evenly over the crop.
float sample(const ClassActivationMap& m, double fx, double fy) {
  const double x = std::clamp(fx * m.width - 0.5, 0.0, double(m.width - 1));
  const double y = std::clamp(fy * m.height - 0.5, 0.0, double(m.height - 1));
  const int x0 = int(x), y0 = int(y);
  const int x1 = std::min(x0 + 1, m.width - 1), y1 = std::min(y0 + 1, m.height - 1);
  const double ax = x - x0, ay = y - y0;
  const auto at = [&](int cx, int cy) { return double(m.values[size_t(cy) * m.width + cx]); };
  return float((1 - ay) * ((1 - ax) * at(x0, y0) + ax * at(x1, y0)) +
               ay * ((1 - ax) * at(x0, y1) + ax * at(x1, y1)));
}

// How much a crop's map counts at a pixel where crops overlap: highest at
// its centre, falling smoothly toward its edges (so no seams where one
// crop's map ends), never 0 (an image edge only one crop reaches).
double crop_weight(double fx, double fy) {
  constexpr double kPi = 3.14159265358979323846;
  return 0.05 + std::sin(kPi * fx) * std::sin(kPi * fy);
}

// One model's maps of every crop, stitched (a weighted mean where crops
// overlap) and scaled to a maximum of 1.
std::vector<float> stitched_map(const Image& image, const ModelFile& model,
                                const std::vector<CropBox>& boxes, int target) {
  const NetworkShape shape = infer_shapes(model.spec, 1, model.height, model.width);
  std::vector<float> input(size_t(3) * model.width * model.height);
  std::vector<double> sum(size_t(image.width) * image.height, 0.0), weight(sum.size(), 0.0);
  for (const CropBox& box : boxes) {
    crop_input(image, box, model, input.data());
    const ClassActivationMap m = grad_cam(shape, model.params, model.buffers, input.data(), target);
    for (int y = 0; y < box.height; ++y)
      for (int x = 0; x < box.width; ++x) {
        const double fx = (x + 0.5) / box.width, fy = (y + 0.5) / box.height;
        const size_t at = size_t(box.y + y) * image.width + size_t(box.x + x);
        const double w = crop_weight(fx, fy);
        sum[at] += w * sample(m, fx, fy);
        weight[at] += w;
      }
  }
  std::vector<float> map(sum.size(), 0.0f);
  float top = 0;
  for (size_t i = 0; i < sum.size(); ++i) {
    if (weight[i] > 0) map[i] = float(sum[i] / weight[i]);
    top = std::max(top, map[i]);
  }
  if (top > 0)
    for (float& v : map) v /= top;
  return map;
}

}  // namespace

std::vector<CropBox> prediction_crops(int image_width, int image_height, const ModelFile& model,
                                      int tiles, const std::string& image_name) {
  if (model.crop == "whole") return {{0, 0, image_width, image_height}};
  int cw = 0, ch = 0;
  require(std::sscanf(model.crop.c_str(), "%dx%d", &cw, &ch) == 2 && cw > 0 && ch > 0,
          "the model's crop '" + model.crop + "' is not WxH");
  require(image_width >= cw && image_height >= ch, (image_name.empty() ? "" : image_name + ": ") +
                                                       "image is smaller than the model's " +
                                                       model.crop + " crop");
  require(tiles >= 1, "prediction_crops: needs at least one tile");
  std::vector<CropBox> boxes;
  for (int ty = 0; ty < tiles; ++ty)
    for (int tx = 0; tx < tiles; ++tx) {
      const int x = tiles == 1 ? (image_width - cw) / 2 : tx * (image_width - cw) / (tiles - 1);
      const int y = tiles == 1 ? (image_height - ch) / 2 : ty * (image_height - ch) / (tiles - 1);
      // An image no larger than the crop repeats one box: score it once.
      const auto same = [&](const CropBox& b) { return b.x == x && b.y == y; };
      if (std::none_of(boxes.begin(), boxes.end(), same)) boxes.push_back({x, y, cw, ch});
    }
  return boxes;
}

void crop_input(const Image& image, const CropBox& box, const ModelFile& model, float* chw) {
  const bool whole =
      box.x == 0 && box.y == 0 && box.width == image.width && box.height == image.height;
  const Image resized = resize_area(
      whole ? image : crop(image, box.x, box.y, box.width, box.height), model.width, model.height);
  augment_to_chw(resized.rgb.data(), model.width, model.height, {}, 0, chw, model.normalization);
}

Explanation explain_image(const Image& image, const std::vector<ModelFile>& models,
                          const std::vector<CropBox>& boxes, int target) {
  require(!models.empty(), "explain_image: no model");
  require(target >= -1 && target < models.front().labels.count(),
          "explain_image: the model has no class " + std::to_string(target));
  Explanation e;
  e.width = image.width;
  e.height = image.height;
  e.target = target;
  e.values.assign(size_t(image.width) * image.height, 0.0f);
  for (const ModelFile& model : models) {
    const std::vector<float> map = stitched_map(image, model, boxes, target);
    for (size_t i = 0; i < map.size(); ++i) e.values[i] += map[i] / float(models.size());
  }
  return e;
}

}  // namespace histocnn
