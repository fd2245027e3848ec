#include "study/bench_examples.h"

#include <filesystem>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/synth.h"

namespace histocnn {
namespace {

ExampleSet random_examples(int size, int benign, int malignant) {
  ExampleSet set;
  set.width = set.height = size;
  Rng rng(static_cast<uint64_t>(size));
  for (int i = 0; i < benign + malignant; ++i)
    set.examples.push_back({0, i < benign ? 0 : 1, 0, 0});
  set.pixels.resize(set.examples.size() * size_t(size) * size * 3);
  for (auto& p : set.pixels) p = uint8_t(rng.next());
  return set;
}

// The study's dataset (seed 1) and crops (256 px, the paper's counts), so
// that a benchmark epoch does the work a study's epoch does.
ExampleSet tissue_examples(int size, int benign, int malignant) {
  const std::string fallback =
      (std::filesystem::temp_directory_path() / "histocnn-synthetic").string();
  const GlasFolder folder = open_glas_folder(cached_synthetic_dataset(SynthOptions{}, fallback));
  CropOptions crops;
  crops.benign_crops = benign;
  crops.malignant_crops = malignant;
  return build_examples(folder.images, crops, size, size, available_cores());
}

}  // namespace

ExampleSet bench_examples(const std::string& pixels, int size, int benign, int malignant) {
  require(pixels == "tissue" || pixels == "random",
          "--pixels " + pixels + ": tissue (the study's synthetic crops) or random");
  if (pixels == "random") return random_examples(size, benign, malignant);
  return tissue_examples(size, benign, malignant);
}

}  // namespace histocnn
