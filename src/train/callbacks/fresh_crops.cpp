#include "core/counter_hash.h"
#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void FreshCrops::on_epoch_start(Trainer& t) {
  const int epoch = t.state().epoch;
  if (epoch > 0) recrop(set_, crop_seed_ ^ mix64(uint64_t(epoch)));
}

}  // namespace histocnn
