#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace histocnn {

void validate(const LrSchedule& s) {
  require(s.kind == "constant" || s.kind == "cosine" || s.kind == "step",
          "--lr-schedule: expected constant, cosine or step, got '" + s.kind + "'");
  require(s.warmup_epochs >= 0, "--warmup-epochs: must not be negative");
  require(s.min_fraction >= 0 && s.min_fraction <= 1, "--lr-min-fraction: must be in [0, 1]");
  require(s.step_epochs >= 1, "--lr-step-epochs: must be at least 1");
  require(s.gamma > 0 && s.gamma <= 1, "--lr-gamma: must be in (0, 1]");
}

double learning_rate_at(const LrSchedule& s, double base, int64_t step, int64_t steps_per_epoch,
                        int epochs) {
  const double per_epoch = double(std::max<int64_t>(steps_per_epoch, 1));
  const double total = per_epoch * std::max(epochs, 1);
  const double warmup = std::min(s.warmup_epochs * per_epoch, total);
  const double t = double(step);
  if (warmup > 0 && t < warmup) return base * (t + 1) / warmup;
  if (s.kind == "cosine") {
    const double span = total - warmup;
    const double progress = span > 0 ? std::clamp((t - warmup) / span, 0.0, 1.0) : 1.0;
    const double low = base * s.min_fraction;
    return low + (base - low) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  if (s.kind == "step") {
    const int decays = int(std::floor(t / per_epoch)) / s.step_epochs;
    return base * std::pow(s.gamma, decays);
  }
  return base;
}

}  // namespace histocnn
