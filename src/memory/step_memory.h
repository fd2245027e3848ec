// Where a compiled training step's tensors live: activations, gradients and
// every workspace a backend declares (oneDNN scratchpads, cuDNN and cuBLAS
// workspaces), each with its lifetime in operations of one step.
//
// Two placements through the same MemoryResource:
//  * planned  (allocator "plan", like ggml-alloc): measure, then allocate. The
//    lifetimes are planned into one arena (memory_plan.h), allocated once at
//    construction: every tensor has a fixed address, the peak is known before
//    the first step, and a step makes zero allocator calls.
//  * per-tensor (direct, pool, async): each step allocates a tensor just before
//    the first operation that uses it and frees it after the last — how a
//    framework without a plan (Theano with lib.cnmem) behaves, so the resource
//    decides the cost: a cudaMalloc/cudaFree per tensor for "direct" (cnmem =
//    0), a pool hit for "pool".
//
// Contract: call begin_op(k) / end_op(k) around operation k, for k = 0 ..
// op_count - 1 in order, each step; a tensor's address is valid from
// begin_op(first_use) to end_op(last_use) (always, when planned). The bind
// callback is told every new address, so a backend can point its descriptors
// at it. Memory space and stream: the resource's, the stream given. Not
// thread-safe: one step runs on one host thread.
#pragma once

#include <functional>
#include <vector>

#include "memory/memory_plan.h"
#include "memory/memory_resource.h"

namespace histocnn {

class StepMemory {
 public:
  using Bind = std::function<void(size_t tensor, void* address)>;
  StepMemory() = default;
  // Throws OutOfMemory (planned: for the arena) with a hint naming the plan's peak.
  StepMemory(std::vector<TensorLifetime> tensors, int op_count, MemoryResource& resource,
             StreamHandle stream, bool planned, Bind bind);
  ~StepMemory();
  StepMemory(const StepMemory&) = delete;
  StepMemory& operator=(const StepMemory&) = delete;

  void begin_op(int k);
  void end_op(int k);
  // Frees whatever a step interrupted by an exception left allocated.
  void abandon_step();

  bool planned() const { return planned_; }
  const MemoryPlan& plan() const { return plan_; }
  const std::vector<TensorLifetime>& tensors() const { return tensors_; }
  // Allocate/deallocate calls made into the resource since construction.
  uint64_t allocator_calls() const { return calls_; }
  // Host seconds spent inside those calls (per-tensor mode; 0 when planned):
  // with cudaMalloc/cudaFree this includes the device synchronisation they imply.
  double allocator_seconds() const { return seconds_; }
  std::string describe() const;  // the plan table, with the placement mode

 private:
  std::vector<TensorLifetime> tensors_;
  MemoryPlan plan_;
  MemoryResource* resource_ = nullptr;
  StreamHandle stream_ = nullptr;
  bool planned_ = true;
  Bind bind_;
  void* arena_ = nullptr;
  std::vector<void*> live_;   // per tensor, while it holds memory (per-tensor mode)
  std::vector<size_t> held_;  // bytes of the allocation it holds
  std::vector<std::vector<size_t>> starts_, ends_;  // tensors first / last used at op k
  uint64_t calls_ = 0;
  double seconds_ = 0;
};

}  // namespace histocnn
