// Static memory planning for a compiled training step (cf. ggml-alloc,
// TFLite's greedy-by-size planner).
//
// Every tensor of the step is known before the first step runs: its size and
// the interval [first_use, last_use] of operation indices that touch it. The
// planner assigns each tensor an offset in one arena so that tensors whose
// intervals overlap never overlap in memory; tensors whose lifetimes are
// disjoint share bytes. The arena is allocated once: zero allocator calls per
// step, and the peak is known before training starts.
//
// Contract:
//  * requests: size > 0, first_use <= last_use;
//  * result offsets are multiples of `alignment` (a power of two);
//  * for any two requests with intersecting intervals, their byte ranges
//    [offset, offset + size) are disjoint (checked by validate_plan);
//  * arena_bytes = max(offset + size), and is >= the largest sum of sizes
//    alive at one operation (the lower bound, `lower_bound_bytes`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace histocnn {

struct TensorLifetime {
  std::string name;  // for reports
  size_t bytes;
  int first_use, last_use;  // operation indices, inclusive
  // In-place: the index of an earlier request this tensor may share bytes with,
  // because the operation at this tensor's first_use (which must be that
  // tensor's last_use) reads it and writes this one element by element. The
  // planner then puts both at the same offset. -1 = none.
  int in_place_of = -1;
};

struct MemoryPlan {
  std::vector<size_t> offsets;   // one per request, same order
  size_t arena_bytes = 0;        // the peak: what the arena must hold
  size_t lower_bound_bytes = 0;  // max over operations of bytes alive (no planner beats it)
  size_t unplanned_bytes = 0;    // sum of all sizes (one allocation per tensor)
};

MemoryPlan plan_memory(const std::vector<TensorLifetime>& tensors, size_t alignment = 256);

// Throws std::logic_error describing the first violation of the contract.
void validate_plan(const std::vector<TensorLifetime>& tensors, const MemoryPlan& plan,
                   size_t alignment = 256);

// A human-readable table of the plan (name, size, interval, offset).
std::string describe_plan(const std::vector<TensorLifetime>& tensors, const MemoryPlan& plan);

}  // namespace histocnn
