#include "nn/adam.h"

#include <cmath>

namespace histocnn {

elementwise::AdamStep adam_constants(const AdamConfig& c, int64_t t) {
  elementwise::AdamStep a;
  a.beta1 = c.beta1;
  a.beta2 = c.beta2;
  a.epsilon = c.epsilon;
  a.step_size = static_cast<float>(c.learning_rate / (1.0 - std::pow(double(c.beta1), double(t))));
  a.v_scale = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(double(c.beta2), double(t))));
  return a;
}

void adam_update(const AdamConfig& c, int64_t t, int64_t n, float* w, const float* g, float* m,
                 float* v) {
  const elementwise::AdamStep a = adam_constants(c, t);
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) elementwise::adam(a, g[i], w + i, m + i, v + i);
}

}  // namespace histocnn
