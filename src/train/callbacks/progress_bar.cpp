#include <cstdio>
#include <string>

#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void ProgressBar::on_batch_end(Trainer& t) {
  const TrainState& s = t.state();
  const int width = 30, filled = s.batches ? s.batch * width / s.batches : width;
  const double elapsed = seconds_since(s.epoch_start);
  const double eta = s.batch ? elapsed / s.batch * (s.batches - s.batch) : 0;
  std::fprintf(stderr, "\r  [%s%s] %d/%d loss %.4f eta %.1fs ",
               std::string(size_t(filled), '#').c_str(),
               std::string(size_t(width - filled), '.').c_str(), s.batch, s.batches,
               s.counted ? s.loss_sum / s.counted : 0.0, eta);
  std::fflush(stderr);
}

void ProgressBar::on_train_epoch_end(Trainer&) {
  std::fprintf(stderr, "\r%*s\r", 80, "");
}

}  // namespace histocnn
