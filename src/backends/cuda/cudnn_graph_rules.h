// The rules of the step's cuDNN graphs (cudnn_graph.h), as plain functions
// with no cuDNN dependency, so host tests (and builds without CUDA) check
// them: tensor strides and alignments, which pointer is which tensor, and
// which engines keep the step's numerics.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "backends/cuda/cuda_schedule.h"

namespace histocnn::cuda {

enum class ConvDirection { kForward, kBackwardData, kBackwardFilter };
const char* direction_name(ConvDirection d);

// One convolution: input x and output y (dimensions in NCHW order, stored
// channels first, or last with `channels_last`, the weights then KRSC), a
// square kernel, stride 1, symmetric padding; `bf16` maps and weights (else
// fp32); `precision` as --precision (fp32 strict, tf32, bf16).
struct GraphConvShape {
  Dims4 x, y;
  int kernel = 0, pad = 0;
  std::string precision = "fp32";
  // The byte alignment of the weights (forward, backward data) and of the
  // weight gradient (backward filter): they sit at offsets of the flat
  // parameter vectors (byte_alignment); the maps are 16-byte aligned.
  int64_t w_alignment = 4, dw_alignment = 4;
  bool channels_last = false;
  bool bf16() const { return precision == "bf16"; }
  Dims4 w() const { return {y.c, x.c, kernel, kernel}; }  // OIHW (cuDNN's KCRS)
};

// Fully packed strides in NCHW dimension order, as the graph API's tensors
// take them: channels first (W, H, C, N innermost to outermost) or last.
std::array<int64_t, 4> packed_strides(const Dims4& d, bool channels_last = false);
// The alignment a tensor at `byte_offset` from a 256-byte-aligned base has,
// as the graph API declares it: the largest power of two dividing the
// offset, at most 16.
int64_t byte_alignment(uint64_t byte_offset);

// The three tensors of a convolution graph, by unique id: x, w, y.
constexpr int64_t kUidX = 'x', kUidW = 'w', kUidY = 'y';
// Which tensor each execute() argument is, per direction: (a, b) -> out is
// x, w -> y forward; w, dy -> dx backward data; x, dy -> dw backward filter.
std::array<int64_t, 3> execute_uids(ConvDirection d);

// What an engine's numerical notes allow under `precision`:
// nondeterministic engines never (weights must be identical run to run);
// in strict fp32 no tensor cores (TF32) and no down-converted inputs; sums in
// reduced precision only under bf16.
struct EngineNotes {
  bool nondeterministic = false, tensor_core = false, down_converts = false,
       reduced_precision_reduction = false;
};
bool engine_allowed(const EngineNotes& notes, const std::string& precision);

// Which directions of a conv block our kernels took (the step's contests):
// --cudnn-graph builds no graph for those (it would be built, and its
// workspace planned, for nothing).
struct OwnDirections {
  bool forward = false;          // conv1's fused convolution + pool
  bool data_gradient = false;    // from the pooled gradient
  bool weight_gradient = false;  // conv1's direct or pooled kernel, or a later block's pooled
};
// Our kernel's direction, "" where a graph is wanted: the first block has
// no data gradient ("no data gradient"), and a direction our kernel took
// keeps it ("our kernel").
std::string graph_not_wanted(ConvDirection d, bool first_block, const OwnDirections& own);

}  // namespace histocnn::cuda
