#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

double BestEpoch::value_of(const std::string& metric, const EvalReport& report) {
  if (metric == "image_auc") return report.per_image.auc;
  if (metric == "image_accuracy") return report.per_image.accuracy;
  if (metric == "image_balanced_accuracy") return report.per_image.balanced_accuracy;
  return report.per_crop.accuracy;
}

void BestEpoch::on_validation_end(Trainer& t) {
  TrainState& s = t.state();
  // Rank 0 alone has the validation metrics (evaluate gathers there): its
  // value decides for every process, so all agree on the best epoch and
  // EarlyStopping ends them together.
  double value = t.comm().root() ? value_of(metric_, *s.validation) : 0.0;
  t.comm().broadcast(&value, sizeof value);
  if (!s.best.empty() && !(value > s.best["value"].get<double>())) return;
  s.best = {{"metric", metric_}, {"value", value}, {"epoch", s.epoch + 1}};
  if (t.comm().root()) save_model_file(t.paths().best, t.model());
  s.line += "  *best*";
}

}  // namespace histocnn
