// Augmentation for H&E crops, applied per example per epoch, seeded by
// (seed, epoch, example) so results do not depend on thread timing.
//  * flips: horizontal and vertical, each with probability 1/2;
//  * rotations: multiples of 90 degrees (180 only, for non-square inputs);
//  * stain jitter: per-channel scale and shift in optical density
//    (-log(I/255)), which models varying haematoxylin/eosin uptake better
//    than RGB brightness jitter; strength configurable;
//  * HED jitter (Tellez et al. 2018): per-stain scale and shift of the
//    haematoxylin, eosin and DAB concentrations (data/stain.h).
#pragma once

#include <cstdint>
#include <string>

namespace histocnn {

struct AugmentOptions {
  bool flips = false;
  bool rotations = false;
  float stain_jitter = 0.0f;  // 0 = off; 0.05 is a mild default when enabled
  float hed_jitter = 0.0f;    // 0 = off; sigma of the HED scale/shift (0.05 light, 0.2 strong)
  bool any() const { return flips || rotations || stain_jitter > 0 || hed_jitter > 0; }
};

// Per-channel input normalisation: x = (v / 255 - mean) / std. Computed from
// the training examples and saved with the model, so eval and predict feed
// the network exactly what it was trained on. Identity = the paper's 1/255.
struct Normalization {
  float mean[3] = {0, 0, 0};
  float stdev[3] = {1, 1, 1};
  std::string text() const;  // "m0,m1,m2,s0,s1,s2"
  static Normalization parse(const std::string& text, const std::string& where);
};

// The dihedral transforms of a CHW image, for test-time augmentation:
// k & 1 flips x, k & 2 flips y, k & 4 transposes (square images only), so
// k in 0..7 covers the 8 symmetries of a square (0..3 of a rectangle).
int dihedral_count(int width, int height);
void dihedral_chw(const float* src, float* dst, int channels, int width, int height, int k);
// The same transform of an RGB image as bytes (H x W x 3, core/byte_images.h):
// a byte image's tables do not depend on the pixel, so expanding the result
// gives dihedral_chw of the expansion, bit for bit.
void dihedral_hwc(const uint8_t* src, uint8_t* dst, int width, int height, int k);

// HED jitter per pixel (an exponential per value) instead of through
// HedTables, for A/B measurements only (bench_loader); process-wide.
void set_per_pixel_hed(bool per_pixel);

// Converts one example (HWC uint8) to normalised CHW float, augmenting it.
void augment_to_chw(const uint8_t* hwc, int width, int height, const AugmentOptions& options,
                    uint64_t seed, float* chw, const Normalization& normalization = {});

// The same example as bytes (core/byte_images.h): `out` gets its H x W x 3
// bytes after the flips and rotations, `tables` its 3 x 256 byte -> value
// tables (stain jitter and normalisation), so that looking each byte up gives
// augment_to_chw's floats bit for bit.
// requires: no HED jitter (options.hed_jitter == 0: a value of it depends on
//           all three channels of its pixel; throws histocnn::Error).
void augment_to_bytes(const uint8_t* hwc, int width, int height, const AugmentOptions& options,
                      uint64_t seed, uint8_t* out, float* tables,
                      const Normalization& normalization = {});
// Whether augment_to_bytes can carry these options.
inline bool bytes_carry(const AugmentOptions& options) {
  return options.hed_jitter <= 0;
}

}  // namespace histocnn
