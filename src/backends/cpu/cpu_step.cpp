// The CPU step's memory plan and execution (see cpu_step.h).
#include "backends/cpu/cpu_step.h"

#include <algorithm>

namespace histocnn {
namespace cpu {

void CpuTrainingStep::plan_buffers() {
  // The plan's tensors: every buffer but the dropped ones, in the order made.
  std::vector<TensorLifetime> lifetimes;
  std::vector<size_t> planned;                 // plan index -> buffers_ index
  std::vector<int> slot(buffers_.size(), -1);  // buffers_ index -> plan index
  for (size_t i = 0; i < buffers_.size(); ++i) {
    if (buffers_[i].dropped) continue;
    slot[i] = int(lifetimes.size());
    planned.push_back(i);
    lifetimes.push_back({buffers_[i].name, buffers_[i].bytes, INT_MAX, -1});
  }
  int index = 0;
  auto visit = [&](const std::vector<Mem>& uses) {
    for (const Mem& m : uses) {
      if (!m) continue;
      auto it = buffer_of_.find(m.get());
      if (it == buffer_of_.end()) continue;  // parameters and gradients: not planned
      require(slot[it->second] >= 0,
              "CPU step: an operation uses the dropped buffer " + buffers_[it->second].name);
      auto& t = lifetimes[size_t(slot[it->second])];
      t.first_use = std::min(t.first_use, index);
      t.last_use = std::max(t.last_use, index);
    }
    ++index;
  };
  visit({input_user_});  // written by run() before the first operation
  for (const auto& op : forward_ops_) visit(op.uses);
  loss_op_ = index;
  const DenseBlock& last = denses_.back();
  visit({last.out, last.d_out});
  for (const auto& op : backward_ops_) visit(op.uses);
  for (const auto& op : grad_ops_) visit(op.uses);
  op_count_ = index;
  for (auto& t : lifetimes)
    if (t.last_use < 0) t.first_use = 0, t.last_use = index - 1;  // unused: keep it apart
  // The loss overwrites the logits with their gradient row by row: in place.
  const size_t logits = size_t(slot[buffer_of_.at(last.out.get())]),
               d_logits = size_t(slot[buffer_of_.at(last.d_out.get())]);
  if (lifetimes[logits].last_use == loss_op_ && lifetimes[d_logits].first_use == loss_op_ &&
      logits < d_logits)
    lifetimes[d_logits].in_place_of = int(logits);
  step_memory_ = std::make_unique<StepMemory>(lifetimes, op_count_, *resource_,
                                              options_.device.stream, options_.device.planned,
                                              [this, planned](size_t i, void* address) {
                                                for (Mem& m : buffers_[planned[i]].handles)
                                                  m.set_data_handle(address);
                                              });
  const MemoryPlan& plan = step_memory_->plan();
  memory_.activation_bytes = int64_t(plan.arena_bytes);
  memory_.plan = step_memory_->describe();
  char line[240];
  std::snprintf(line, sizeof line,
                "oneDNN %d.%d.%d; activation arena %.1f MB (%.1f MB unplanned), %s through %s",
                dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch,
                plan.arena_bytes / 1e6, plan.unplanned_bytes / 1e6,
                options_.device.planned ? "planned" : "per tensor", resource_->name().c_str());
  memory_.detail = line;
}

// The batch into the step's input buffer, zeros past `count` rows: split over
// the OpenMP team in 64 KiB pieces (24 MB at 200 px and batch 50 — serial,
// it would be a fixed cost that more cores never shrink).
void CpuTrainingStep::copy_input(const float* images, int count) {
  const int64_t image = int64_t(shape_.channels) * shape_.height * shape_.width;
  const int64_t filled = image * count, total = image * shape_.batch;
  float* user = floats(input_user_);
  constexpr int64_t kPiece = 16384;  // floats
  const int64_t pieces = (total + kPiece - 1) / kPiece;
#pragma omp parallel for schedule(static)
  for (int64_t piece = 0; piece < pieces; ++piece) {
    const int64_t begin = piece * kPiece, end = std::min(total, begin + kPiece);
    const int64_t copied = std::clamp(filled - begin, int64_t(0), end - begin);
    if (copied > 0) std::memcpy(user + begin, images + begin, sizeof(float) * size_t(copied));
    std::fill(user + begin + copied, user + end, 0.0f);
  }
}

void CpuTrainingStep::check_batch(int count, bool training, bool backward) const {
  require(count >= 1 && count <= shape_.batch, "batch of " + std::to_string(count) +
                                                   " images does not fit the compiled batch of " +
                                                   std::to_string(shape_.batch));
  if (!shape_.has_batch_norm()) return;
  // The batch's statistics must not count padding rows (the trainer drops
  // a short last batch of a batch-norm network), and the backward pass
  // needs the statistics of a training forward.
  require(!training || count == shape_.batch,
          "batch norm trains on full batches: " + std::to_string(count) + " of " +
              std::to_string(shape_.batch) + " rows");
  require(training || !backward, "batch norm: gradients need training mode");
}

StepResult CpuTrainingStep::run(const float* images, const int32_t* labels, int count,
                                bool training, bool backward, float* features) {
  check_batch(count, training, backward);
  if (shape_.has_batch_norm() && training) bn_buffers_.batches_tracked++;
  training_ = training;
  StepMemory& memory = *step_memory_;
  int k = 0;  // the operation index, as planned
  // Around every operation: its tensors' memory (a no-op when planned).
  // Planned: nothing to do or time (no clock reads on the step's hot path).
  auto enter = [&] {
    if (memory.planned()) return;
    const auto t = Clock::now();
    memory.begin_op(k);
    profile_.allocator += seconds_since(t);
  };
  auto leave = [&] {
    if (memory.planned()) return void(++k);
    const auto t = Clock::now();
    memory.end_op(k++);
    profile_.allocator += seconds_since(t);
  };
  StepResult result;
  try {
    enter();
    const auto copy_start = Clock::now();
    copy_input(images, count);
    if (options_.profile_layers) profile_.layers["input"] += seconds_since(copy_start);
    leave();
    auto start = Clock::now();
    if (weights_dirty_) {
      for (auto& op : weight_ops_) execute(op);
      weights_dirty_ = false;
    }
    for (auto& op : forward_ops_) {
      enter();
      execute(op);
      leave();
    }
    stream_.wait();  // the loss reads the logits on the host
    enter();
    if (options_.profile_layers) {
      const auto t = Clock::now();
      result = loss_and_gradient(labels, count, backward);
      profile_.layers["loss"] += seconds_since(t);
    } else {
      result = loss_and_gradient(labels, count, backward);
    }
    leave();
    if (features)
      std::memcpy(features, floats(denses_.back().src),
                  sizeof(float) * size_t(count) * size_t(shape_.denses.back().in));
    profile_.forward += seconds_since(start);
    if (backward) {
      start = Clock::now();
      for (auto* ops : {&backward_ops_, &grad_ops_})
        for (auto& op : *ops) {
          enter();
          execute(op);
          leave();
        }
      stream_.wait();
      profile_.backward += seconds_since(start);
    } else {
      while (k < op_count_) leave();  // frees what the skipped backward would have read
    }
  } catch (...) {
    memory.abandon_step();
    throw;
  }
  return result;
}

StepResult CpuTrainingStep::loss_and_gradient(const int32_t* labels, int count, bool backward) {
  // Softmax cross-entropy over the classes, mean over the `count` real rows.
  // d_logits may share memory with the logits (planned in place).
  DenseBlock& last = denses_.back();
  const int classes = shape_.classes();
  const float* logits = floats(last.out);
  float* d_logits = floats(last.d_out);
  // The mean over the global batch (this call's rows when not a slice).
  const int denominator = slice_.global_count > 0 ? slice_.global_count : count;
  StepResult r;
  for (int row = 0; row < shape_.batch; ++row) {
    const bool real = row < count && labels;
    const int y = real ? labels[row] : 0;
    if (real) check_label(y, classes);
    const size_t at = size_t(row) * size_t(classes);
    const elementwise::SoftmaxRow s =
        elementwise::softmax_xent(logits + at, classes, y, options_.label_smoothing);
    if (real) {
      r.loss_sum += s.loss;
      r.correct += s.correct;
    }
    elementwise::softmax_xent_grad(s, logits + at, classes, y,
                                   real && backward ? 1.0f / float(denominator) : 0.0f,
                                   probs_.data() + at, d_logits + at, options_.label_smoothing);
  }
  return r;
}

}  // namespace cpu

namespace {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<TrainingStep> compile(const ModelSpec& spec, const NetworkShape& shape,
                                        const StepOptions& options) override {
    (void)spec;  // the shape carries everything the CPU step needs
    return std::make_unique<cpu::CpuTrainingStep>(shape, options);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace histocnn
