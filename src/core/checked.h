// Products of sizes that come from specs, flags or files, computed in 64 bits
// with overflow checks: a hostile or mistaken size is an error naming what it
// sizes, never a wrapped number.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace histocnn {

// The product of non-negative factors; throws histocnn::Error "<what>: ..."
// when it exceeds `limit` (or 2^63 - 1).
inline int64_t checked_product(std::initializer_list<int64_t> factors, const std::string& what,
                               int64_t limit = INT64_MAX) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (f < 0) fail(what + ": negative size");
    if (__builtin_mul_overflow(product, f, &product) || product > limit)
      fail(what + ": too large (more than " + std::to_string(limit) + ")");
  }
  return product;
}

}  // namespace histocnn
