#include "nn/adam.h"

#include <cmath>

namespace histocnn {

elementwise::AdamStep adam_constants(const AdamConfig& c, int64_t t) {
  return elementwise::adam_step(c.learning_rate, c.beta1, c.beta2, c.epsilon, c.weight_decay, t);
}

void adam_update(const AdamConfig& c, int64_t t, int64_t n, float* w, const float* g, float* m,
                 float* v) {
  const elementwise::AdamStep a = adam_constants(c, t);
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) elementwise::adam(a, g[i], w + i, m + i, v + i);
}

}  // namespace histocnn
