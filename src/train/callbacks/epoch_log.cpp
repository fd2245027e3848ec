#include <cstdio>

#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void EpochLog::on_epoch_end(Trainer& t) {
  const TrainState& s = t.state();
  char timing[64];
  std::snprintf(timing, sizeof timing, "  %.2fs  %.0f img/s", s.seconds, s.seen / s.seconds);
  t.log(s.line + timing);
}

}  // namespace histocnn
