// The stateless counter hash behind dropout masks: (seed, stream, index) ->
// uniform [0,1) with 24 random bits (exact in float). Host and device code
// call the same function, so the CPU, the CUDA kernels and the PyTorch
// reference script (tools/torch_reference.py) draw bit-identical masks.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace histocnn {

// splitmix64's finaliser of z + golden ratio.
HISTOCNN_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

HISTOCNN_HD float counter_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  const uint64_t s = seed ^ (stream * 0xD1B54A32D192ED03ull) ^ (index * 0x9E3779B97F4A7C15ull);
  return float(mix64(s) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace histocnn
