#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void BatchNormSync::on_train_epoch_end(Trainer& t) {
  Buffers b = t.step().buffers();
  t.comm().broadcast(b.values.data(), b.values.size() * sizeof(float));
  t.step().set_buffers(b);
}

}  // namespace histocnn
