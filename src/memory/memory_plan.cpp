#include "memory/memory_plan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace histocnn {
namespace {

size_t align_up(size_t value, size_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

bool intervals_overlap(const TensorLifetime& a, const TensorLifetime& b) {
  return a.first_use <= b.last_use && b.first_use <= a.last_use;
}

}  // namespace

namespace {

// The root of an in-place chain (a tensor that shares nothing earlier).
size_t root_of(const std::vector<TensorLifetime>& tensors, size_t i) {
  while (tensors[i].in_place_of >= 0) i = size_t(tensors[i].in_place_of);
  return i;
}

bool in_place_pair(const std::vector<TensorLifetime>& tensors, size_t a, size_t b) {
  return root_of(tensors, a) == root_of(tensors, b);
}

// Refuses what no plan can honour: a bad alignment, too many tensors, an
// empty or huge tensor, an inverted lifetime, an in-place link that is not
// to an earlier tensor last used where this one is first used.
void check_requests(const std::vector<TensorLifetime>& tensors, size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > (size_t(1) << 20))
    throw std::invalid_argument("plan_memory: alignment must be a power of two <= 1 MB");
  constexpr size_t kMaxTensor = size_t(1) << 48;  // sums of 2^15 of them cannot wrap
  if (tensors.size() > (size_t(1) << 15))
    throw std::invalid_argument("plan_memory: more than 32768 tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    if (t.bytes == 0 || t.bytes > kMaxTensor || t.first_use > t.last_use)
      throw std::invalid_argument("plan_memory: bad request '" + t.name + "'");
    if (t.in_place_of >= 0 &&
        (size_t(t.in_place_of) >= i || tensors[size_t(t.in_place_of)].last_use != t.first_use))
      throw std::invalid_argument("plan_memory: '" + t.name +
                                  "' cannot be in place of a tensor that is not last used where "
                                  "it is first used");
  }
}

// In-place chains are placed as one request: the union of their intervals
// and the largest of their sizes. group_of[i]: tensor i's group.
std::vector<TensorLifetime> group_in_place_chains(const std::vector<TensorLifetime>& tensors,
                                                  std::vector<size_t>& group_of) {
  std::vector<TensorLifetime> groups;
  group_of.assign(tensors.size(), 0);
  std::map<size_t, size_t> group_of_root;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const size_t root = root_of(tensors, i);
    auto [it, added] = group_of_root.emplace(root, groups.size());
    if (added) groups.push_back(tensors[i]);
    TensorLifetime& g = groups[it->second];
    g.bytes = std::max(g.bytes, tensors[i].bytes);
    g.first_use = std::min(g.first_use, tensors[i].first_use);
    g.last_use = std::max(g.last_use, tensors[i].last_use);
    group_of[i] = it->second;
  }
  return groups;
}

// Greedy by size: place the largest groups first, each at the lowest
// offset where it fits between the already placed groups whose lifetimes
// overlap its own (the smallest such gap: best fit), else after them all.
// O(n^2 log n) for n tensors — n is a few dozen per step.
std::vector<size_t> place_groups(const std::vector<TensorLifetime>& groups, size_t alignment) {
  std::vector<size_t> order(groups.size()), offsets(groups.size(), 0);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (groups[a].bytes != groups[b].bytes) return groups[a].bytes > groups[b].bytes;
    return groups[a].first_use < groups[b].first_use;
  });
  std::vector<size_t> placed;
  for (size_t index : order) {
    const auto& t = groups[index];
    std::vector<std::pair<size_t, size_t>> busy;  // [begin, end) of conflicting placed groups
    for (size_t other : placed)
      if (intervals_overlap(t, groups[other]))
        busy.push_back({offsets[other], offsets[other] + groups[other].bytes});
    std::sort(busy.begin(), busy.end());
    size_t offset = 0, best = SIZE_MAX, best_gap = SIZE_MAX;
    for (const auto& [begin, end] : busy) {
      // The gap [offset, begin): take the smallest one that fits (best fit).
      if (begin > offset && begin - offset >= t.bytes && begin - offset < best_gap) {
        best = offset;
        best_gap = begin - offset;
      }
      offset = std::max(offset, align_up(end, alignment));
    }
    offsets[index] = best != SIZE_MAX ? best : offset;
    placed.push_back(index);
  }
  return offsets;
}

// The lower bound of any plan: the most bytes alive at any one operation.
size_t most_bytes_alive(const std::vector<TensorLifetime>& groups) {
  std::map<int, long long> delta;
  for (const auto& t : groups) {
    delta[t.first_use] += static_cast<long long>(t.bytes);
    delta[t.last_use + 1] -= static_cast<long long>(t.bytes);
  }
  long long alive = 0;
  size_t most = 0;
  for (const auto& [op, d] : delta) {
    alive += d;
    most = std::max(most, size_t(alive));
  }
  return most;
}

}  // namespace

MemoryPlan plan_memory(const std::vector<TensorLifetime>& tensors, size_t alignment) {
  check_requests(tensors, alignment);
  MemoryPlan plan;
  for (const auto& t : tensors) plan.unplanned_bytes += align_up(t.bytes, alignment);
  std::vector<size_t> group_of;
  const std::vector<TensorLifetime> groups = group_in_place_chains(tensors, group_of);
  const std::vector<size_t> offsets = place_groups(groups, alignment);
  plan.offsets.assign(tensors.size(), 0);
  for (size_t i = 0; i < tensors.size(); ++i) plan.offsets[i] = offsets[group_of[i]];
  for (size_t g = 0; g < groups.size(); ++g)
    plan.arena_bytes = std::max(plan.arena_bytes, offsets[g] + groups[g].bytes);
  plan.arena_bytes = align_up(plan.arena_bytes, alignment);
  plan.lower_bound_bytes = most_bytes_alive(groups);
  return plan;
}

void validate_plan(const std::vector<TensorLifetime>& tensors, const MemoryPlan& plan,
                   size_t alignment) {
  if (plan.offsets.size() != tensors.size()) throw std::logic_error("plan: size mismatch");
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (plan.offsets[i] % alignment != 0)
      throw std::logic_error("plan: '" + tensors[i].name + "' is misaligned");
    if (plan.offsets[i] + tensors[i].bytes > plan.arena_bytes)
      throw std::logic_error("plan: '" + tensors[i].name + "' exceeds the arena");
    for (size_t j = i + 1; j < tensors.size(); ++j) {
      if (!intervals_overlap(tensors[i], tensors[j])) continue;
      if (in_place_pair(tensors, i, j)) {
        if (plan.offsets[i] != plan.offsets[j])
          throw std::logic_error("plan: in-place '" + tensors[j].name + "' is not at '" +
                                 tensors[i].name + "''s offset");
        continue;
      }
      const bool disjoint = plan.offsets[i] + tensors[i].bytes <= plan.offsets[j] ||
                            plan.offsets[j] + tensors[j].bytes <= plan.offsets[i];
      if (!disjoint)
        throw std::logic_error("plan: '" + tensors[i].name + "' and '" + tensors[j].name +
                               "' are alive together but overlap in memory");
    }
  }
}

std::string describe_plan(const std::vector<TensorLifetime>& tensors, const MemoryPlan& plan) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof line, "%-28s %12s %9s %14s\n", "tensor", "bytes", "ops", "offset");
  out << line;
  for (size_t i = 0; i < tensors.size(); ++i) {
    std::snprintf(line, sizeof line, "%-28s %12zu %4d-%-4d %14zu\n", tensors[i].name.c_str(),
                  tensors[i].bytes, tensors[i].first_use, tensors[i].last_use, plan.offsets[i]);
    out << line;
  }
  std::snprintf(
      line, sizeof line,
      "arena %.1f MB (lower bound %.1f MB; one allocation per tensor would take %.1f MB)\n",
      plan.arena_bytes / 1e6, plan.lower_bound_bytes / 1e6, plan.unplanned_bytes / 1e6);
  out << line;
  return out.str();
}

}  // namespace histocnn
