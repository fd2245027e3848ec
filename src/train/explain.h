// Explanations of a prediction: Grad-CAM maps (nn/grad_cam.h) of every crop
// `predict` scores in an image, put back where each crop came from and
// upsampled to the image's pixels, so a pathologist sees which glands the
// verdict rests on.
#pragma once

#include <string>
#include <vector>

#include "data/image.h"
#include "train/checkpoint.h"

namespace histocnn {

// A crop of an image, in the image's pixels.
struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;
};

// Where `predict` reads an image: tiles x tiles crops of the model's crop size
// spread evenly from corner to corner (one: centred; an image no larger than
// the crop gives its one box once), or the whole image for a whole-image model. Requires: the image
// at least the crop's size (the error names `image_name` when given).
std::vector<CropBox> prediction_crops(int image_width, int image_height, const ModelFile& model,
                                      int tiles, const std::string& image_name = "");

// The network input of one crop: cut, area-resized to the model's input and
// normalised as it was trained (3 x height x width).
void crop_input(const Image& image, const CropBox& box, const ModelFile& model, float* chw);

struct Explanation {
  int width = 0, height = 0;  // the image's
  // height x width in [0, 1]: per pixel, the mean over the crops covering it
  // of their Grad-CAM maps (bilinear to the crop; weighted toward each crop's
  // centre so no seams show where one ends), scaled so the image's
  // maximum is 1 (members of an ensemble each scaled, then averaged); 0 where
  // no crop reaches.
  std::vector<float> values;
  int target = 0;  // the class explained
};

// Grad-CAM for class `target` (a class of the models' label scheme: 0
// benign, 1 malignant for GlaS labels; -1: each crop's predicted class) of
// the crops `boxes`
// of `image` (stain-normalised already, as the models read it).
Explanation explain_image(const Image& image, const std::vector<ModelFile>& models,
                          const std::vector<CropBox>& boxes, int target);

}  // namespace histocnn
