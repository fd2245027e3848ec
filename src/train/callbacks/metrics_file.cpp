#include "core/atomic_file.h"
#include "train/callbacks.h"
#include "train/trainer.h"

namespace histocnn {

void MetricsFile::on_fit_end(Trainer& t) {
  const TrainState& s = t.state();
  const MemoryReport memory = t.step().memory();
  // The last epoch's breakdown: steady state, no warm-up.
  summary_["profile"] = s.history.back().value("profile", nlohmann::json::object());
  summary_["memory"] = {{"activation_bytes", memory.activation_bytes},
                        {"parameter_bytes", memory.parameter_bytes},
                        {"allocator_calls", memory.allocator_calls},
                        {"detail", memory.detail}};
  summary_["allocator"] = engine_.to_json();
  summary_["backend"] = t.step().details();
  summary_["history"] = s.history;
  summary_["validation"] = s.last_validation;
  summary_["best"] = s.best;
  if (t.comm().root()) write_file_atomically(t.paths().metrics, summary_.dump(2) + "\n");
}

}  // namespace histocnn
