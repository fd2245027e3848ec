// A synthetic GlaS-like dataset: procedurally drawn H&E-like tissue written
// in the GlaS release layout (Grade.csv + images), so every command and test
// runs on a fresh machine without downloads.
//
// Tissue: pink eosin stroma with fibre texture and scattered stromal nuclei.
//  benign    — round, regular glands: a pale lumen ringed by epithelium whose
//              small, uniform nuclei sit in one aligned row at the base;
//  malignant — irregular, crowded glands that fuse, with small or split
//              lumens and large, pleomorphic, stratified nuclei.
// Each patient's images share a label and a stain tint (as in real slides),
// and a grade name (Grade.csv's fourth column: healthy or adenomatous for
// benign patients, one of the three adenocarcinoma grades for malignant ones;
// the drawing does not differ between grades of one class).
#pragma once

#include <cstdint>
#include <string>

#include "data/image.h"

namespace histocnn {

struct SynthOptions {
  int images = 60;  // total, split evenly between the classes
  int images_per_patient = 4;
  int width = 775, height = 522;
  std::string prefix = "train";
  std::string format = "png";  // png | bmp | jpg
  uint64_t seed = 1;
  bool force = false;  // write into a folder that already holds a dataset (replacing it)
};

Image draw_synthetic_tissue(int width, int height, bool malignant, uint64_t seed);
// Writes Grade.csv and the images into `folder` (created if needed); refuses
// a folder that already holds a dataset unless options.force.
void write_synthetic_dataset(const std::string& folder, const SynthOptions& options);

// Bumped whenever the generator draws other images for the same options.
// (2: Grade.csv names the five grades.)
constexpr int kSynthGeneratorRevision = 2;

// The synthetic dataset of `options`, written once into the user's cache
// ($HISTOCNN_CACHE, $XDG_CACHE_HOME/histocnn or ~/.cache/histocnn) and shared
// by every study that asks for it (each used to hold its own 70 MB copy);
// `fallback` (written if absent) where there is no cache to write to.
// Returns the folder.
std::string cached_synthetic_dataset(const SynthOptions& options, const std::string& fallback);

}  // namespace histocnn
