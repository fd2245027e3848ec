// Convolutions through cuDNN's graph API (the v9 "backend" API; every legacy
// call the step makes is marked deprecated in cuDNN 9): one operation graph
// per conv layer and direction, cuDNN's heuristics (mode A) for its engine
// configurations, and of those the first that builds, fits the workspace
// budget and keeps the step's numerics — deterministic, and in strict fp32 no
// tensor cores and no down-converted inputs — or, under --cudnn-benchmark,
// the fastest such one, timed on the device. Executed with a variant pack of
// the step's pointers (rebuilt only when they change: once under the plan).
//
// Opt-in (--cudnn-graph) until measured on a GPU; whatever cuDNN refuses
// leaves that layer and direction on the legacy API, and metrics.json says
// which API each took and why.
//
// The rules are plain functions in cudnn_graph_rules.h (host-tested);
// GraphConv is the CUDA part.
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cudnn_graph_rules.h"

namespace histocnn::cuda {

// A planned convolution in one direction. available() is false, with a
// reason, when cuDNN offers no engine the rules allow.
class GraphConv {
 public:
  // `time_ms` (may be empty): calls `run` with scratch buffers, by tensor
  // (x, w, y, and a workspace of the limit's size), and returns its
  // milliseconds on the device, for --cudnn-benchmark; empty: the
  // heuristics' order decides. A run that fails returns a negative time,
  // and that engine is skipped.
  using Run = std::function<void(const std::array<void*, 4>& scratch)>;
  using Timer = std::function<float(const Run& run)>;
  GraphConv(cudnnHandle_t handle, const GraphConvShape& shape, ConvDirection direction,
            size_t workspace_limit, const Timer& time_ms = {});
  ~GraphConv();
  GraphConv(const GraphConv&) = delete;
  GraphConv& operator=(const GraphConv&) = delete;

  bool available() const { return plan_ != nullptr; }
  const std::string& why_not() const { return why_not_; }
  size_t workspace() const { return workspace_; }
  // The engine chosen (cuDNN's global engine index) and how many were tried.
  int64_t engine() const { return engine_; }
  int candidates() const { return candidates_; }

  // out = conv(a, b) in this direction (see execute_uids); `workspace` holds
  // workspace() bytes. Asynchronous on the handle's stream.
  void execute(cudnnHandle_t handle, const void* a, const void* b, void* out, void* workspace);

 private:
  void build(cudnnHandle_t handle, const GraphConvShape& shape, ConvDirection direction,
             size_t workspace_limit, const Timer& time_ms);
  ConvDirection direction_;
  cudnnBackendDescriptor_t plan_ = nullptr, pack_ = nullptr;
  std::array<const void*, 4> packed_{};  // the pointers pack_ holds (a, b, out, workspace)
  size_t workspace_ = 0;
  int64_t engine_ = -1;
  int candidates_ = 0;
  std::string why_not_;
  // What the plan was built from (tensors, operation, graph, engine
  // configuration), kept for the plan's life as cuDNN's frontend keeps them.
  std::vector<cudnnBackendDescriptor_t> kept_;
};

}  // namespace histocnn::cuda
