// The rules of the step's cuDNN graphs: see cudnn_graph_rules.h.
#include "backends/cuda/cudnn_graph_rules.h"

namespace histocnn::cuda {

const char* direction_name(ConvDirection d) {
  switch (d) {
    case ConvDirection::kForward:
      return "forward";
    case ConvDirection::kBackwardData:
      return "backward_data";
    case ConvDirection::kBackwardFilter:
      return "backward_filter";
  }
  return "?";
}

std::array<int64_t, 4> packed_strides(const Dims4& d, bool channels_last) {
  if (channels_last) return {int64_t(d.c) * d.h * d.w, 1, int64_t(d.w) * d.c, int64_t(d.c)};
  return {int64_t(d.c) * d.h * d.w, int64_t(d.h) * d.w, int64_t(d.w), 1};
}

int64_t byte_alignment(uint64_t byte_offset) {
  int64_t alignment = 1;
  while (alignment < 16 && byte_offset % uint64_t(alignment * 2) == 0) alignment *= 2;
  return alignment;
}

std::array<int64_t, 3> execute_uids(ConvDirection d) {
  switch (d) {
    case ConvDirection::kForward:
      return {kUidX, kUidW, kUidY};
    case ConvDirection::kBackwardData:
      return {kUidW, kUidY, kUidX};
    case ConvDirection::kBackwardFilter:
      return {kUidX, kUidY, kUidW};
  }
  return {};
}

bool engine_allowed(const EngineNotes& notes, const std::string& precision) {
  if (notes.nondeterministic) return false;
  const bool strict = precision == "fp32";
  return !(strict && (notes.tensor_core || notes.down_converts)) &&
         !(precision != "bf16" && notes.reduced_precision_reduction);
}

std::string graph_not_wanted(ConvDirection d, bool first_block, const OwnDirections& own) {
  switch (d) {
    case ConvDirection::kForward:
      return own.forward ? "our kernel" : "";
    case ConvDirection::kBackwardData:
      return first_block ? "no data gradient" : own.data_gradient ? "our kernel" : "";
    case ConvDirection::kBackwardFilter:
      return own.weight_gradient ? "our kernel" : "";
  }
  return "";
}

}  // namespace histocnn::cuda
