#include <cmath>

#include "core/error.h"
#include "train/callbacks.h"
#include "train/run_checks.h"
#include "train/trainer.h"

namespace histocnn {

void DivergenceGuard::on_results(Trainer& t) {
  const double loss = t.state().results.loss_sum;
  if (!std::isfinite(loss))
    throw DivergenceError("training diverged: loss is " + std::to_string(loss) + " at epoch " +
                          std::to_string(t.state().epoch + 1) +
                          kept_checkpoint(t.paths().checkpoint) + " (try a lower --lr)");
}

// The epoch's last update can blow the weights up after its loss was
// computed: checked before validation predicts with them.
void DivergenceGuard::on_train_epoch_end(Trainer& t) {
  if (!all_finite(t.step().parameters().values))
    throw DivergenceError("training diverged: the weights are not finite after epoch " +
                          std::to_string(t.state().epoch + 1) +
                          kept_checkpoint(t.paths().checkpoint) + " (try a lower --lr)");
}

}  // namespace histocnn
