// A GlaS-layout folder (Grade.csv + NAME.bmp|png|jpg), its splits and
// patient-grouped folds, and the examples the network sees: random crops
// (the paper's protocol) or whole images, resized to the input size.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/grade_csv.h"
#include "data/image.h"
#include "data/labels.h"
#include "data/stain.h"

namespace histocnn {

struct SlideImage {
  std::string name;  // e.g. train_12
  std::string path;  // resolved image file
  std::string patient;
  int label;  // class index under the folder's label scheme (glas: 0 benign, 1 malignant)
};

struct GlasFolder {
  std::string root;
  std::vector<SlideImage> images;
  LabelScheme labels;  // what `label` means
  // What a user should know about how the folder was read (one line each):
  // left-out class folders, images without a patient.
  std::vector<std::string> notes;
};

// Reads Grade.csv, resolves every listed image, checks each file exists.
// `split` keeps names starting with it ("train", "testA", "testB"; "" or "all" = all).
// `labels` is --labels (data/labels.h); a scheme read from a column takes
// its classes from every row of the file, not only the split's.
GlasFolder open_glas_folder(const std::string& root, const std::string& split = "",
                            const std::string& labels = "glas");

// Patient-grouped, class-stratified k-fold assignment: all images of a patient
// land in the same fold, and each fold gets as even a share of each class as
// the patients allow. Returns a fold index per image.
std::vector<int> patient_folds(const std::vector<SlideImage>& images, int k, uint64_t seed);

struct CropOptions {
  bool whole_image = false;  // resize the whole image instead of cropping
  int crop_width = 256, crop_height = 256;
  // Crops in total per class over the chosen images, spread evenly over each
  // class's images, so every class gets its share however few images it has:
  //   two classes: benign_crops, malignant_crops (the paper: 941, 910);
  //   more: crops_per_class each (0: the paper's 1851 split evenly);
  //   class_crops, when not empty, gives each class's count (eval, validation).
  int benign_crops = 941;
  int malignant_crops = 910;
  int crops_per_class = 0;  // with two classes too, when set
  std::vector<int> class_crops;
  std::vector<int> crops_by_class(int classes) const;
  int classes = 0;  // of the label scheme; 0: the images' largest label + 1 (at least 2)
  uint64_t seed = 1;
  // Crops with more than this fraction of background (unstained glass or
  // lumen: every channel >= 210) are drawn again, up to 16 times, keeping the
  // least empty; 1 = every position accepted (the paper).
  float max_background = 1.0f;
  // Stain normalisation of every image to this target before cropping.
  std::optional<StainMatrix> stain_target;
  StainRecipe stain_recipe;  // how (normalize_stains(..., recipe))
  // Keep every image at the crop's scale (area-resized by input / crop) so
  // recrop() can draw new positions each epoch by copying windows: the
  // network never sees the same crop twice, which memorising needs.
  bool fresh_each_epoch = false;
  // Evaluation: each crop position of an image at most once. Crops at one
  // position hold the same pixels and score the same, and a tile no larger
  // than the crop (224-pixel tiles, a 224 crop) has a single position: its
  // 8 evaluation crops would be 8 copies, decoded, stored and predicted.
  // The image sizes are read from the file headers first, so an image gets
  // no more crops than it has positions; crops whose random positions
  // coincide are dropped after cutting.
  bool distinct_positions = false;
};

// Fraction of background pixels in a rectangle, in O(1) per query from a
// summed-area table of the image's background mask.
class BackgroundMap {
 public:
  BackgroundMap() = default;
  explicit BackgroundMap(const Image& image);
  float fraction(int x, int y, int width, int height) const;

 private:
  int width_ = 0, height_ = 0;
  std::vector<uint32_t> sums_;  // (width + 1) x (height + 1)
};
bool is_background(const uint8_t rgb[3]);

// The Macenko target of a set of images: stains estimated over a sample of the
// pixels (every 7th) of all of them, or of a seeded random kStainTargetImages
// when there are more (100,000 Kather tiles would hold 2 GB of samples and
// decode for a minute to move the target by nothing), decoded on `workers`
// threads.
constexpr size_t kStainTargetImages = 1000;
// The indices of the images it reads, in order: all, or the sample.
std::vector<int> stain_target_sample(size_t images);
StainMatrix estimate_stain_target(const std::vector<SlideImage>& images, int workers,
                                  StainMethod method);

// One example: pixels at the input size, and where it came from.
struct Example {
  int image_index;  // into the image list it was built from
  int label;
  int x, y;  // crop origin in the source image (0,0 for whole images)
};

// Examples stored as 8-bit RGB at the input size, decoded and resized once
// (in parallel); augmentation happens later, per epoch, in the loader.
struct ExampleSet {
  int width = 0, height = 0;
  std::vector<SlideImage> images;
  std::vector<Example> examples;
  std::vector<uint8_t> pixels;  // examples.size() * height * width * 3
  // Only with CropOptions::fresh_each_epoch: each image at the examples'
  // scale (stain-normalised), its background map, and the redraw threshold.
  // Example x, y are then positions in these scaled images.
  std::vector<Image> sources;
  std::vector<BackgroundMap> backgrounds;
  float max_background = 1.0f;
  // With CropOptions::distinct_positions: the planned crops left out as
  // repeats of a position (ExampleSet::examples holds the rest).
  size_t repeated_positions = 0;
  const uint8_t* pixels_of(size_t i) const {
    return pixels.data() + i * size_t(width) * height * 3;
  }
};

// Per-channel mean and standard deviation of the examples' pixels (in [0,1]).
Normalization channel_statistics(const ExampleSet& set);

// Decodes the images and cuts their examples (crops, or whole images).
// `decode`, when given, selects the images this process reads: the examples
// of the others keep their plan (image, label) but no pixels — a process of a
// data-parallel run fills them from the others (Communicator exchange). Each
// image's crops depend only on its own seed, so the split changes nothing.
ExampleSet build_examples(const std::vector<SlideImage>& images, const CropOptions& options,
                          int width, int height, int workers,
                          const std::function<bool(size_t image)>& decode = {});

// "N of the M crops repeated ...": what distinct_positions left out, for a note.
std::string repeated_positions_note(const ExampleSet& set);

// Keeps the first example of each (image, position), in order, adding the
// others to set.repeated_positions; returns how many it dropped.
// build_examples calls it for CropOptions::distinct_positions, except when
// `decode` leaves positions to other processes: call it after their
// exchange. Requires a set built without fresh_each_epoch.
size_t drop_repeated_crops(ExampleSet& set);

// Draws every example's crop again from its scaled source image (seeded,
// deterministic; background-rejecting as the set was built) and copies the
// pixels. Requires a set built with fresh_each_epoch.
void recrop(ExampleSet& set, uint64_t seed);

}  // namespace histocnn
