// Learning-rate schedules, as a pure function of the global step so a resumed
// run continues on the same curve:
//   constant  the base rate (the paper, Keras' Adam)
//   cosine    half a cosine from the base rate down to base * min_fraction
//             over the steps after warm-up (Loshchilov & Hutter 2017, no restarts)
//   step      the base rate times gamma every step_epochs epochs
// Every schedule may start with a linear warm-up from base / warmup_steps to
// the base rate over warmup_epochs (Goyal et al. 2017).
#pragma once

#include <cstdint>
#include <string>

namespace histocnn {

struct LrSchedule {
  std::string kind = "constant";  // constant | cosine | step
  double warmup_epochs = 0;
  double min_fraction = 0.0;  // cosine: the final rate relative to the base
  int step_epochs = 10;       // step: epochs between decays
  double gamma = 0.1;         // step: the factor of each decay
};

// Throws naming the flag when the schedule is inconsistent.
void validate(const LrSchedule& schedule);

// The rate of step `step` (0-based: the step about to run) of a run of
// `epochs` epochs of `steps_per_epoch` steps each.
double learning_rate_at(const LrSchedule& schedule, double base, int64_t step,
                        int64_t steps_per_epoch, int epochs);

}  // namespace histocnn
