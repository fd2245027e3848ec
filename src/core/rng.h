// Deterministic random numbers. Two kinds:
//  * Rng: a small sequential generator (xoshiro256**) for data order, crops,
//    augmentation and initialisation; seeded with splitmix64.
//  * counter_uniform(): a stateless hash of (seed, stream, index) -> [0,1).
//    Dropout masks use it, so the CPU and CUDA backends (and the PyTorch
//    reference script) draw bit-identical masks without sharing state.
#pragma once

#include <cstdint>
#include <limits>

#include "core/counter_hash.h"

namespace histocnn {

inline uint64_t splitmix64(uint64_t& state) {
  const uint64_t z = state;
  state += 0x9E3779B97F4A7C15ull;
  return mix64(z);
}

class Rng {
 public:
  using result_type = uint64_t;
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t s = seed;
    for (auto& word : state_) word = splitmix64(s);
  }

  uint64_t operator()() { return next(); }
  static constexpr uint64_t min() { return 0; }
  static constexpr uint64_t max() { return std::numeric_limits<uint64_t>::max(); }

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n); n > 0.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>(uniform() * static_cast<double>(n)); }
  double normal() {
    // Box-Muller; one value per call is enough for our uses.
    double u1 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double u2 = uniform();
    return __builtin_sqrt(-2.0 * __builtin_log(u1)) * __builtin_cos(6.283185307179586 * u2);
  }

  // Derive an independent generator (for a worker, an image, an epoch).
  Rng fork(uint64_t salt) {
    uint64_t s = next() ^ (salt * 0xA24BAED4963EE407ull);
    return Rng(splitmix64(s));
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t state_[4];
};

}  // namespace histocnn
