#include "train/adam.h"

#include <cmath>

namespace histocnn {

void adam_update(const AdamConfig& c, int64_t t, int64_t n, float* w, const float* g, float* m,
                 float* v) {
  const float b1 = c.beta1, b2 = c.beta2;
  const float step = static_cast<float>(c.learning_rate / (1.0 - std::pow(double(b1), double(t))));
  const float v_scale = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(double(b2), double(t))));
  const float eps = c.epsilon;
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] -= step * mi / (std::sqrt(vi) * v_scale + eps);
  }
}

}  // namespace histocnn
