// The rules of the CUDA step's cuDNN graphs (cudnn_graph_rules.h), checked
// without a GPU: what the graph API is told about each tensor, which pointer
// is which tensor in each direction, and which engines may run. On a GPU,
// `histocnn selftest --device cuda --cudnn-graph` checks the graphs
// themselves against the CPU backend.
#include <gtest/gtest.h>

#include <set>

#include "backends/cuda/cudnn_graph_rules.h"

namespace histocnn::cuda {
namespace {

TEST(CudnnGraphRules, PackedStridesAreNchwAsTheLegacyDescriptorsImply) {
  const Dims4 d{50, 32, 198, 197};
  const auto s = packed_strides(d);
  EXPECT_EQ(s[0], d.stride_n());
  EXPECT_EQ(s[1], d.stride_c());
  EXPECT_EQ(s[2], 197);
  EXPECT_EQ(s[3], 1);
  const GraphConvShape g{{2, 3, 20, 20}, {2, 32, 18, 18}, 3, 0};
  EXPECT_EQ(g.w().n, 32);  // OIHW: out, in, kernel, kernel
  EXPECT_EQ(g.w().c, 3);
  EXPECT_EQ(g.w().h, 3);
  EXPECT_EQ(g.w().w, 3);
  EXPECT_FALSE(g.bf16());
}

// Either layout: the strides the graph API is told must find each element
// where our kernels put it (MapLayout::at), for maps and KRSC filters.
TEST(CudnnGraphRules, StridesFindWhatMapLayoutPlacesInEitherLayout) {
  for (bool last : {false, true})
    for (const Dims4& d : {Dims4{2, 32, 9, 7}, Dims4{32, 3, 3, 3}, Dims4{1, 64, 1, 5}}) {
      const auto s = packed_strides(d, last);
      const MapLayout layout = d.layout(last);
      for (int n = 0; n < d.n; ++n)
        for (int c = 0; c < d.c; ++c)
          for (int y = 0; y < d.h; ++y)
            for (int x = 0; x < d.w; ++x)
              ASSERT_EQ(n * s[0] + c * s[1] + y * s[2] + x * s[3], layout.at(n, c, y, x))
                  << (last ? "channels last " : "channels first ") << n << c << y << x;
    }
}

// Weights sit at float (or bf16) offsets of an aligned block: the alignment
// declared must never claim more than the pointer has.
TEST(CudnnGraphRules, AlignmentIsTheLargestPowerOfTwoOfTheOffsetUpTo16) {
  EXPECT_EQ(byte_alignment(0), 16);
  EXPECT_EQ(byte_alignment(4 * 896), 16);  // conv2.weight of the paper's net, fp32
  EXPECT_EQ(byte_alignment(4 * 3), 4);     // an odd float offset
  EXPECT_EQ(byte_alignment(2 * 3), 2);     // an odd bf16 offset
  EXPECT_EQ(byte_alignment(2 * 4), 8);
  EXPECT_EQ(byte_alignment(1), 1);
  for (uint64_t offset = 1; offset < 4096; ++offset)
    ASSERT_EQ(offset % uint64_t(byte_alignment(offset)), 0u) << offset;
}

// execute(a, b, out): forward x, w -> y; backward data w, dy -> dx; backward
// filter x, dy -> dw. Each direction names each tensor once, and writes the
// one the legacy call writes.
TEST(CudnnGraphRules, EachDirectionBindsItsPointersToTheRightTensors) {
  EXPECT_EQ(execute_uids(ConvDirection::kForward), (std::array<int64_t, 3>{kUidX, kUidW, kUidY}));
  EXPECT_EQ(execute_uids(ConvDirection::kBackwardData),
            (std::array<int64_t, 3>{kUidW, kUidY, kUidX}));
  EXPECT_EQ(execute_uids(ConvDirection::kBackwardFilter),
            (std::array<int64_t, 3>{kUidX, kUidY, kUidW}));
  EXPECT_EQ(std::set<int64_t>({kUidX, kUidW, kUidY}).size(), 3u);
  EXPECT_STREQ(direction_name(ConvDirection::kBackwardFilter), "backward_filter");
}

TEST(CudnnGraphRules, EnginesKeepDeterminismAndTheRequestedPrecision) {
  EngineNotes plain;
  for (const char* p : {"fp32", "tf32", "bf16"}) EXPECT_TRUE(engine_allowed(plain, p)) << p;
  EngineNotes racy;
  racy.nondeterministic = true;
  for (const char* p : {"fp32", "tf32", "bf16"}) EXPECT_FALSE(engine_allowed(racy, p)) << p;
  EngineNotes tensor_core;
  tensor_core.tensor_core = true;
  EXPECT_FALSE(engine_allowed(tensor_core, "fp32"));  // would be TF32
  EXPECT_TRUE(engine_allowed(tensor_core, "tf32"));
  EXPECT_TRUE(engine_allowed(tensor_core, "bf16"));
  EngineNotes down;
  down.down_converts = true;
  EXPECT_FALSE(engine_allowed(down, "fp32"));
  EXPECT_TRUE(engine_allowed(down, "tf32"));
  EngineNotes reduced;
  reduced.reduced_precision_reduction = true;
  EXPECT_FALSE(engine_allowed(reduced, "fp32"));
  EXPECT_FALSE(engine_allowed(reduced, "tf32"));
  EXPECT_TRUE(engine_allowed(reduced, "bf16"));
}

// --cudnn-graph builds a graph only for a direction cuDNN runs: not for one
// our kernel took (a graph built, and its workspace planned, for nothing:
// before, the data gradient's and the forward's were, and their workspaces
// replaced our routes' none), nor for the first block's data gradient.
TEST(CudnnGraphRules, NoGraphForADirectionOurKernelTook) {
  const OwnDirections none;
  for (ConvDirection d :
       {ConvDirection::kForward, ConvDirection::kBackwardData, ConvDirection::kBackwardFilter})
    EXPECT_EQ(graph_not_wanted(d, false, none), "") << direction_name(d);
  EXPECT_EQ(graph_not_wanted(ConvDirection::kBackwardData, true, none), "no data gradient");
  EXPECT_EQ(graph_not_wanted(ConvDirection::kForward, true, none), "");
  const OwnDirections conv1{true, false, true};  // fused forward, direct weight gradient
  EXPECT_EQ(graph_not_wanted(ConvDirection::kForward, true, conv1), "our kernel");
  EXPECT_EQ(graph_not_wanted(ConvDirection::kBackwardFilter, true, conv1), "our kernel");
  const OwnDirections later{false, true, false};  // pooled data gradient, cuDNN's weights
  EXPECT_EQ(graph_not_wanted(ConvDirection::kForward, false, later), "");
  EXPECT_EQ(graph_not_wanted(ConvDirection::kBackwardData, false, later), "our kernel");
  EXPECT_EQ(graph_not_wanted(ConvDirection::kBackwardFilter, false, later), "");
}

}  // namespace
}  // namespace histocnn::cuda
