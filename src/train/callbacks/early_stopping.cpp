#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void EarlyStopping::on_epoch_end(Trainer& t) {
  TrainState& s = t.state();
  if (s.best.empty() || s.epoch + 1 - s.best["epoch"].get<int>() < patience_) return;
  t.log("early stop: " + s.best["metric"].get<std::string>() + " has not improved for " +
        std::to_string(patience_) + " epochs (best " + s.best["value"].dump() + " at epoch " +
        s.best["epoch"].dump() + ")");
  s.stop = true;
}

}  // namespace histocnn
