#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void LearningRateSchedule::on_batch_start(Trainer& t) {
  const TrainOptions& o = t.options();
  const TrainState& s = t.state();
  const int64_t steps_per_epoch = s.batches;
  const int64_t step = int64_t(s.epoch) * steps_per_epoch + s.batch;
  t.step().set_learning_rate(
      float(learning_rate_at(o.schedule, o.adam.learning_rate, step, steps_per_epoch, o.epochs)));
}

}  // namespace histocnn
