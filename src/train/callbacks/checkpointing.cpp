#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void Checkpointing::on_epoch_end(Trainer& t) {
  if (!every_epoch_) return;
  const ModelFile checkpoint = t.checkpoint();  // every rank: the step's state is collective
  if (t.comm().root()) save_model_file(t.paths().checkpoint, checkpoint);
}

void Checkpointing::on_fit_end(Trainer& t) {
  if (t.comm().root()) save_model_file(t.paths().model, t.model());
}

}  // namespace histocnn
