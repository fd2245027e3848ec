#include "memory/step_memory.h"

#include <chrono>
#include <cstdio>

namespace histocnn {

StepMemory::StepMemory(std::vector<TensorLifetime> tensors, int op_count, MemoryResource& resource,
                       StreamHandle stream, bool planned, Bind bind)
    : tensors_(std::move(tensors)),
      plan_(plan_memory(tensors_, kAlignment)),
      resource_(&resource),
      stream_(stream),
      planned_(planned),
      bind_(std::move(bind)),
      live_(tensors_.size(), nullptr),
      held_(tensors_.size(), 0),
      starts_(size_t(op_count)),
      ends_(size_t(op_count)) {
  validate_plan(tensors_, plan_, kAlignment);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (tensors_[i].first_use < 0 || tensors_[i].last_use >= op_count)
      throw std::invalid_argument("step memory: '" + tensors_[i].name + "' outside the step");
    starts_[size_t(tensors_[i].first_use)].push_back(i);
    ends_[size_t(tensors_[i].last_use)].push_back(i);
  }
  if (!planned_) return;
  try {
    arena_ = resource_->allocate(plan_.arena_bytes, stream_);
  } catch (const OutOfMemory& e) {
    char hint[160];
    std::snprintf(hint, sizeof hint, "the step's planned peak is %.1f MB (histocnn memplan)",
                  plan_.arena_bytes / 1e6);
    throw OutOfMemory(e.requested, e.stats, resource_->name(), OutOfMemory::join(e.hint, hint));
  }
  ++calls_;
  for (size_t i = 0; i < tensors_.size(); ++i)
    bind_(i, static_cast<char*>(arena_) + plan_.offsets[i]);
}

StepMemory::~StepMemory() {
  if (!resource_) return;
  abandon_step();
  if (arena_) resource_->deallocate(arena_, plan_.arena_bytes, stream_);
}

namespace {
// Adds the seconds of its lifetime to `total` (the allocator's share of a step).
class Stopwatch {
 public:
  explicit Stopwatch(double& total) : total_(total) {}
  ~Stopwatch() {
    total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  Stopwatch(const Stopwatch&) = delete;
  Stopwatch& operator=(const Stopwatch&) = delete;

 private:
  double& total_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};
}  // namespace

void StepMemory::begin_op(int k) {
  if (planned_ || starts_[size_t(k)].empty()) return;
  const Stopwatch watch(seconds_);
  for (size_t i : starts_[size_t(k)]) {
    const TensorLifetime& t = tensors_[i];
    const int from = t.in_place_of;
    if (from >= 0 && live_[size_t(from)] && held_[size_t(from)] >= t.bytes) {
      // In place: take over the buffer the operation reads (its holder's last use is k).
      live_[i] = live_[size_t(from)];
      held_[i] = held_[size_t(from)];
      live_[size_t(from)] = nullptr;  // handed on: freed by the new holder
    } else {
      live_[i] = resource_->allocate(t.bytes, stream_);
      held_[i] = t.bytes;
      ++calls_;
    }
    bind_(i, live_[i]);
  }
}

void StepMemory::end_op(int k) {
  if (planned_ || ends_[size_t(k)].empty()) return;
  const Stopwatch watch(seconds_);
  for (size_t i : ends_[size_t(k)]) {
    if (!live_[i]) continue;
    resource_->deallocate(live_[i], held_[i], stream_);
    ++calls_;
    live_[i] = nullptr;
  }
}

void StepMemory::abandon_step() {
  if (planned_) return;
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (live_[i]) {
      resource_->deallocate(live_[i], held_[i], stream_);
      live_[i] = nullptr;
    }
}

std::string StepMemory::describe() const {
  return describe_plan(tensors_, plan_) +
         (planned_ ? "placement: planned arena (one allocation, none per step)\n"
                   : "placement: per tensor through the allocator, every step\n");
}

}  // namespace histocnn
