// The CUDA step's logic, verified without a GPU: its schedule (tensors,
// order, lifetimes, in-place links, cuBLAS operand mapping) executed on the
// host (cuda_schedule_on_host.h), planned and per tensor, must equal the
// reference network's results; and the schedule's plain functions (shapes,
// algorithm choice, the largest batch) hold their contracts.
#include <gtest/gtest.h>

#include "cuda_schedule_on_host.h"

namespace histocnn::cuda {
namespace {

using testing::Case;

class CudaScheduleOnHost : public ::testing::TestWithParam<Case> {};

TEST_P(CudaScheduleOnHost, MatchesTheReferenceNetworkPlannedAndPerTensor) {
  expect_schedule_matches_reference(GetParam(), false);
}

// The CUDA loss kernel's rows with smoothed labels, in the schedule.
TEST(CudaScheduleOnHost, SmoothedLabelsMatchTheReference) {
  const NetworkShape shape =
      infer_shapes(parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dense 5"), 6, 14, 14);
  const Parameters params = Parameters::glorot(shape, 5);
  const auto images = testing::random_vector(size_t(6) * 3 * 14 * 14, 17, 0, 1);
  const std::vector<int32_t> labels = {0, 4, 2, 1, 3, 2};
  const elementwise::LabelSmoothing s{0.3f, true};
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        6, false, 99, 4, nullptr, s);
  const HostRun got = run_schedule(shape, params, images.data(), labels.data(), BatchMeta{6, 0, 0},
                                   false, 99, 4, true, {}, nullptr, s);
  EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss));
  testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4, "smoothed");
}

// Data parallelism on the GPU: slices of a batch (each staged with its global
// row count and first row) give gradients and losses that sum to the whole
// batch's — the kernels' slice arithmetic, dropout included.
TEST(CudaScheduleOnHost, SlicesOfABatchSumToTheWholeBatch) {
  const NetworkShape whole_shape = infer_shapes(
      parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dropout 0.5; dense 2"), 5, 16, 16);
  const Parameters params = Parameters::glorot(whole_shape, 4);
  const auto images = testing::random_vector(size_t(5) * 3 * 16 * 16, 3, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 1, 0, 1};
  const HostRun whole = run_schedule(whole_shape, params, images.data(), labels.data(),
                                     BatchMeta{5, 0, 0}, true, 7, 2, true);
  const NetworkShape part_shape = infer_shapes(
      parse_model_spec("conv 8 kernel=3 pool=2; dense 16; dropout 0.5; dense 2"), 3, 16, 16);
  std::vector<float> grads(whole.grads.values.size(), 0.0f);
  double loss = 0;
  for (const auto& [first, rows] : std::vector<std::pair<int, int>>{{0, 2}, {2, 3}}) {
    const HostRun part =
        run_schedule(part_shape, params, images.data() + size_t(first) * 3 * 16 * 16,
                     labels.data() + first, BatchMeta{rows, 5, first}, true, 7, 2, false);
    for (size_t i = 0; i < grads.size(); ++i) grads[i] += part.grads.values[i];
    loss += part.loss;
  }
  EXPECT_NEAR(loss, whole.loss, 1e-6);
  for (size_t i = 0; i < grads.size(); ++i) ASSERT_NEAR(grads[i], whole.grads.values[i], 1e-5) << i;
}

// Non-zero biases, so the routes' bias paths (ReLU after the max) show.
Parameters with_biases(Parameters params) {
  for (const auto& info : params.layout)
    if (info.is_bias)
      for (int64_t i = 0; i < info.size; ++i) params.data(info)[i] = 0.05f * float((i % 7) - 3);
  return params;
}

// conv1's own routes (ConvRoutes): the fused forward kernel and the weight
// gradient from the pooled gradient, each alone and both, channels first and
// last, planned (what dies early is poisoned) and per tensor — the same
// results as the reference network, without the tensors they remove.
TEST(CudaScheduleOnHost, Conv1RoutesMatchTheReferenceWithoutTheTensorsTheyRemove) {
  for (const char* spec : {"conv 8 kernel=3 pool=2; conv 6 kernel=3 pool=2; dense 10; dense 3",
                           "conv 5 kernel=5 pool=2 pad=same; dense 4; dropout 0.5; dense 2"}) {
    const NetworkShape shape = infer_shapes(parse_model_spec(spec), 5, 23, 19);
    const Parameters params = with_biases(Parameters::glorot(shape, 5));
    const auto images = testing::random_vector(size_t(5) * 3 * 23 * 19, 17, 0, 1);
    const std::vector<int32_t> labels = {0, 1, 2 % shape.classes(), 1, 0};
    const auto want = reference::network_forward_backward(shape, params, images.data(),
                                                          labels.data(), 5, true, 99, 4);
    for (ConvRoutes routes :
         {ConvRoutes{true, false}, ConvRoutes{false, true}, ConvRoutes{true, true}}) {
      const CudaSchedule s = build_cuda_schedule(shape, {}, {}, {routes});
      for (const auto& t : s.tensors) {
        EXPECT_FALSE(routes.fused_forward && t.name == "conv1.out") << spec;
        EXPECT_FALSE(routes.pooled_weight_gradient && t.name == "conv1.d_out") << spec;
      }
      for (bool last : {false, true})
        for (bool planned : {true, false}) {
          const std::string what = std::string(spec) + " fused " +
                                   std::to_string(routes.fused_forward) + " pooled " +
                                   std::to_string(routes.pooled_weight_gradient) + " last " +
                                   std::to_string(last) + " planned " + std::to_string(planned);
          const HostRun got =
              run_schedule(shape, params, images.data(), labels.data(), BatchMeta{5, 0, 0}, true,
                           99, 4, planned, {}, nullptr, {}, false, last, {routes});
          EXPECT_NEAR(got.loss, want.loss, 1e-5 * std::max(1.0, want.loss)) << what;
          testing::expect_gradients_match(got.grads, want.grads, 1e-5, 1e-4, what);
          for (int i = 0; i < shape.classes() * 5; ++i)
            EXPECT_NEAR(got.probs[size_t(i)], want.probs[size_t(i)], 1e-5) << what;
        }
    }
  }
}

// A network of three conv blocks for the later blocks' routes, and its
// results by the reference network.
struct ThreeBlocks {
  NetworkShape shape;
  Parameters params;
  std::vector<float> images;
  std::vector<int32_t> labels = {0, 1, 2, 1, 0};
  reference::NetworkResult want;
};
ThreeBlocks three_blocks(const char* spec, uint64_t image_seed) {
  ThreeBlocks net;
  net.shape = infer_shapes(parse_model_spec(spec), 5, 38, 34);
  net.params = with_biases(Parameters::glorot(net.shape, 5));
  net.images = testing::random_vector(size_t(5) * 3 * 38 * 34, image_seed, 0, 1);
  net.want = reference::network_forward_backward(net.shape, net.params, net.images.data(),
                                                 net.labels.data(), 5, true, 99, 4);
  return net;
}
// The schedule with `routes` on the host, planned (what dies early is
// poisoned) and per tensor, channels first and last: the reference's loss
// and gradients.
void expect_reference_results(const ThreeBlocks& net, const std::vector<ConvRoutes>& routes,
                              const std::string& what) {
  for (bool last : {false, true})
    for (bool planned : {true, false}) {
      const std::string at =
          what + " last " + std::to_string(last) + " planned " + std::to_string(planned);
      const HostRun got = run_schedule(net.shape, net.params, net.images.data(), net.labels.data(),
                                       BatchMeta{5, 0, 0}, true, 99, 4, planned, {}, nullptr, {},
                                       false, last, routes);
      EXPECT_NEAR(got.loss, net.want.loss, 1e-5 * std::max(1.0, net.want.loss)) << at;
      testing::expect_gradients_match(got.grads, net.want.grads, 1e-5, 1e-4, at);
    }
}
bool touches(const ScheduledOp& op, int tensor) {
  return std::count(op.tensors.begin(), op.tensors.end(), tensor) == 1;
}

// Later blocks' weight gradients from the pooled gradient (ConvRoutes,
// pooled_wgrad_kernels.h), with conv1's routes or without: the reference
// network's results. The pool backward still writes each block's
// conv-output gradient for its data gradient; the weight gradient no
// longer reads it, and reads the pooled maps instead.
TEST(CudaScheduleOnHost, LaterBlocksPooledWeightGradientsMatchTheReference) {
  const ThreeBlocks net = three_blocks(
      "conv 8 kernel=3 pool=2; conv 6 kernel=3 pool=2 pad=same; conv 5 kernel=5 pool=2 pad=same; "
      "dense 10; dense 3",
      19);
  const ConvRoutes pooled{false, true};
  for (const ConvRoutes& first : {ConvRoutes{}, ConvRoutes{true, true}}) {
    const std::vector<ConvRoutes> routes = {first, pooled, pooled};
    const CudaSchedule s = build_cuda_schedule(net.shape, {}, {}, routes);
    for (size_t k = 1; k < 3; ++k) {
      const auto& c = s.convs[k];
      EXPECT_GE(c.d_conv_out, 0) << "the data gradient reads it";
      for (const auto& op : s.ops)
        if (op.kind == OpKind::kConvBackwardFilter && op.layer == int(k)) {
          EXPECT_FALSE(touches(op, c.d_conv_out));
          EXPECT_TRUE(touches(op, c.d_pooled));
          EXPECT_TRUE(touches(op, c.argmax));
        }
    }
    expect_reference_results(net, routes, "conv1 fused " + std::to_string(first.fused_forward));
  }
}

// Later blocks' data gradients from the pooled gradient (ConvRoutes,
// pooled_dgrad_kernels.h), 'valid' and 'same', kernel 3 and 5, with their
// weight gradients from cuDNN's stand-in or from the pooled gradient: the
// reference network's results. With both from the pooled gradient no block
// after conv1 has a conv-output gradient: the pool backward writes only the
// bias sums.
TEST(CudaScheduleOnHost, LaterBlocksPooledDataGradientsMatchTheReference) {
  const ThreeBlocks net = three_blocks(
      "conv 8 kernel=3 pool=2; conv 6 kernel=3 pool=2; conv 5 kernel=5 pool=2 pad=same; "
      "dense 10; dense 3",
      23);
  for (bool pooled_wgrad : {false, true}) {
    const ConvRoutes later{false, pooled_wgrad, true};
    const std::vector<ConvRoutes> routes = {ConvRoutes{true, true}, later, later};
    const CudaSchedule s = build_cuda_schedule(net.shape, {}, {}, routes);
    for (size_t k = 1; k < 3; ++k) {
      const auto& c = s.convs[k];
      EXPECT_EQ(c.d_conv_out >= 0, !pooled_wgrad) << "read by cuDNN's weight gradient alone";
      EXPECT_EQ(c.ws_backward_data, -1);
      for (const auto& op : s.ops)
        if (op.kind == OpKind::kConvBackwardData && op.layer == int(k)) {
          EXPECT_TRUE(touches(op, c.d_pooled));
          EXPECT_TRUE(touches(op, c.argmax));
          EXPECT_FALSE(touches(op, c.pooled)) << "ReLU' comes from the argmax flag";
        }
    }
    for (const auto& t : s.tensors) {
      EXPECT_FALSE(pooled_wgrad && t.name == "conv2.d_out") << t.name;
      EXPECT_FALSE(pooled_wgrad && t.name == "conv3.d_out") << t.name;
    }
    expect_reference_results(net, routes,
                             "weight gradients pooled " + std::to_string(pooled_wgrad));
  }
}

// With a pool, ReLU' comes from the argmax byte's flag (core/argmax_byte.h):
// no backward op reads a block's pooled map except the next block's weight
// gradient, whose input it is, so the map dies there. Without a pool the
// pool backward reads the ReLU's output, the only place ReLU' is. Whatever
// the routes.
TEST(CudaSchedule, NoBackwardOpReadsAPooledMapOnlyAnUnpooledReluOutput) {
  const NetworkShape shape =
      infer_shapes(parse_model_spec("conv 8 kernel=3 pool=2; conv 8 kernel=3 pool=1 pad=same; "
                                    "conv 6 kernel=3 pool=2; dense 10; dense 2"),
                   2, 30, 30);
  const std::vector<std::vector<ConvRoutes>> route_sets = {
      {}, {ConvRoutes{true, true}, {}, ConvRoutes{false, true, true}}};
  for (const auto& routes : route_sets) {
    ASSERT_EQ(conv_routes_unsupported(shape, routes), "");
    const CudaSchedule s = build_cuda_schedule(shape, {}, {}, routes);
    int relu_reads = 0;
    for (const ScheduledOp& op : s.ops) {
      if (op.kind != OpKind::kPoolReluBackward && op.kind != OpKind::kConvBackwardFilter &&
          op.kind != OpKind::kConvBackwardData)
        continue;
      for (size_t j = 0; j < s.convs.size(); ++j) {
        const auto& c = s.convs[j];
        if (!touches(op, c.pooled)) continue;
        if (op.kind == OpKind::kConvBackwardFilter && op.layer == int(j) + 1) continue;  // input
        const std::string what = "conv" + std::to_string(j + 1) + ".pooled";
        EXPECT_EQ(c.pool, 1) << what << " read by a backward op";
        EXPECT_EQ(op.kind, OpKind::kPoolReluBackward) << what;
        EXPECT_EQ(op.layer, int(j)) << what;
        ++relu_reads;
      }
    }
    EXPECT_EQ(relu_reads, 1) << "conv2 (no pool): its ReLU output, once";
  }
}

TEST(CudaSchedule, LaterBlocksRoutesAreRefusedWhereTheyCannotRun) {
  auto shape = [](const char* spec) { return infer_shapes(parse_model_spec(spec), 2, 20, 20); };
  const NetworkShape net = shape("conv 8 kernel=3 pool=2; conv 8 kernel=3 pool=2; dense 2");
  const ConvRoutes pooled{false, true};
  EXPECT_EQ(conv_routes_unsupported(net, {{}, pooled}), "");
  EXPECT_NE(conv_routes_unsupported(net, {{}, {true, false}}), "") << "fused: conv1's only";
  EXPECT_NE(conv_routes_unsupported(net, {{}, pooled, pooled}), "") << "a third block";
  EXPECT_THROW(build_cuda_schedule(net, {}, {}, {{}, {true, false}}), std::logic_error);
  const NetworkShape bn =
      shape("conv 8 kernel=3 pool=2; conv 8 kernel=3 pool=2 pad=same bn; gap; dense 2");
  EXPECT_NE(conv_routes_unsupported(bn, {{}, pooled}), "") << "batch norm";
  const NetworkShape unpooled = shape("conv 8 kernel=3 pool=2; conv 8 kernel=3 pool=1; dense 2");
  EXPECT_NE(conv_routes_unsupported(unpooled, {{}, pooled}), "") << "no pool";
  const NetworkShape kernel7 = shape(
      "conv 8 kernel=3 pool=2; conv 8 kernel=7 pool=1 pad=same; "
      "dense 2");
  EXPECT_NE(conv_routes_unsupported(kernel7, {{}, pooled}), "") << "kernel 7";
  // The data gradient from the pooled gradient: later blocks, 2x2 pools,
  // 'valid' or 'same'.
  const ConvRoutes dgrad{false, false, true};
  EXPECT_EQ(conv_routes_unsupported(net, {{}, dgrad}), "");
  EXPECT_NE(conv_routes_unsupported(net, {dgrad}), "") << "conv1 has no data gradient";
  EXPECT_NE(conv_routes_unsupported(bn, {{}, dgrad}), "") << "batch norm";
  EXPECT_NE(conv_routes_unsupported(unpooled, {{}, dgrad}), "") << "no pool";
  const NetworkShape pool3 = shape("conv 8 kernel=3 pool=2; conv 8 kernel=3 pool=3; dense 2");
  EXPECT_EQ(conv_routes_unsupported(pool3, {{}, pooled}), "") << "3x3: the weight gradient's";
  EXPECT_NE(conv_routes_unsupported(pool3, {{}, dgrad}), "") << "3x3: not the data gradient's";
}

// The paper's network at 200x200, batch 50: the two routes remove conv1's
// output and its gradient (251 MB each), which made the plan's peak at both
// ends of the step.
TEST(CudaSchedule, Conv1RoutesShrinkThePapersPlan) {
  const NetworkShape shape = infer_shapes(default_model_spec(), 50, 200, 200);
  auto arena = [&](ConvRoutes r) {
    return plan_memory(build_cuda_schedule(shape, {}, {}, {r}).tensors).arena_bytes;
  };
  const size_t none = arena({}), fused = arena({true, false}), pooled = arena({false, true}),
               both = arena({true, true});
  const size_t conv_out = size_t(50) * 32 * 198 * 198 * 4;
  // Each alone leaves the other end's peak (conv1's output at the start,
  // its gradient at the end); both together take it away.
  EXPECT_LE(fused, none);
  EXPECT_LE(pooled, none);
  EXPECT_LT(both, std::min(fused, pooled));
  EXPECT_LE(both + conv_out / 2, none) << "the peak falls by more than half a conv output";
}

TEST(CudaSchedule, Conv1RoutesAreRefusedWhereTheyCannotRun) {
  auto shape = [](const char* spec) { return infer_shapes(parse_model_spec(spec), 2, 20, 20); };
  const NetworkShape bn = shape("conv 8 kernel=3 pool=2 pad=same bn; gap; dense 2");
  const NetworkShape unpooled = shape("conv 8 kernel=3 pool=1; conv 8 kernel=3 pool=2; dense 2");
  const NetworkShape kernel7 = shape("conv 8 kernel=7 pool=2; dense 2");
  for (ConvRoutes r : {ConvRoutes{true, false}, ConvRoutes{false, true}}) {
    EXPECT_NE(conv1_routes_unsupported(bn, r), "");
    EXPECT_THROW(build_cuda_schedule(bn, {}, {}, {r}), std::logic_error);
    EXPECT_NE(conv1_routes_unsupported(unpooled, r), "");
  }
  EXPECT_NE(conv1_routes_unsupported(kernel7, {true, false}), "");
  EXPECT_NE(conv1_routes_unsupported(kernel7, {false, true}), "");
  // A 3x3 pool: the weight gradient from the pooled gradient, not the fused
  // forward (compiled for 2x2).
  const NetworkShape pool3 = shape("conv 8 kernel=3 pool=3; dense 2");
  EXPECT_NE(conv1_routes_unsupported(pool3, {true, false}), "");
  EXPECT_EQ(conv1_routes_unsupported(pool3, {false, true}), "");
  EXPECT_EQ(conv1_routes_unsupported(bn, {}), "");
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaScheduleOnHost,
                         ::testing::ValuesIn(testing::architectures()), testing::case_name);

// Batch norm and global average pooling through the CUDA schedule: training
// gradients and running statistics, then inference with them.
class CudaScheduleBatchNormOnHost : public ::testing::TestWithParam<Case> {};

TEST_P(CudaScheduleBatchNormOnHost, MatchesTheReferenceInTrainingAndInference) {
  expect_batch_norm_schedule_matches_reference(GetParam(), false);
}

INSTANTIATE_TEST_SUITE_P(BatchNorm, CudaScheduleBatchNormOnHost,
                         ::testing::ValuesIn(testing::batch_norm_architectures()),
                         testing::case_name);

TEST(CudaSchedule, DescriptorShapesMatchTheNetworkShapeAndEveryTensorIsUsed) {
  for (const char* spec : {"conv 16 kernel=5 pool=3 pad=same; conv 16 kernel=3 pool=2; dense 2",
                           "conv 32 kernel=3 pool=2; conv 32 kernel=3 pool=2; conv 64 kernel=3 "
                           "pool=2; dense 64; dropout 0.5; dense 2"}) {
    const NetworkShape shape = infer_shapes(parse_model_spec(spec), 7, 61, 45);
    const CudaSchedule s = build_cuda_schedule(shape);
    ASSERT_EQ(s.convs.size(), shape.convs.size());
    for (size_t k = 0; k < shape.convs.size(); ++k) {
      const ConvShape& cs = shape.convs[k];
      const auto& c = s.convs[k];
      EXPECT_EQ(c.x.c, cs.in_c);
      EXPECT_EQ(c.x.h, cs.in_h);
      EXPECT_EQ(c.y.c, cs.out_c);
      EXPECT_EQ(c.y.h, cs.conv_h);
      EXPECT_EQ(c.y.w, cs.conv_w);
      EXPECT_EQ(c.pooled_dims.h, cs.out_h);
      EXPECT_EQ(c.pooled_dims.w, cs.out_w);
      EXPECT_EQ(c.y.stride_n(), int64_t(cs.out_c) * cs.conv_h * cs.conv_w);
    }
    EXPECT_EQ(s.denses.front().in, s.convs.back().pooled_dims.stride_n())
        << "NCHW pooled map is the dense input without a copy";
    for (const auto& t : s.tensors) {
      EXPECT_LE(t.first_use, t.last_use) << t.name << " is never used";
      EXPECT_GT(t.bytes, 0u) << t.name;
    }
    EXPECT_NO_THROW(validate_plan(s.tensors, plan_memory(s.tensors)));
  }
}

TEST(CudaSchedule, GemmMappingsEqualTheReferenceDenseLayer) {
  const int n = 5, in = 7, out = 3;
  const auto x = testing::random_vector(n * in, 1), wt = testing::random_vector(out * in, 2),
             dy = testing::random_vector(n * out, 3);
  std::vector<float> zero_bias(out, 0), y(n * out), y_ref(n * out), dx(n * in), dx_ref(n * in),
      dw(out * in), dw_ref(out * in), db_ref(out);
  host_gemm(dense_forward_gemm(n, in, out), wt.data(), x.data(), y.data());
  reference::dense_forward(x.data(), wt.data(), zero_bias.data(), y_ref.data(), n, in, out);
  host_gemm(dense_backward_data_gemm(n, in, out), wt.data(), dy.data(), dx.data());
  host_gemm(dense_backward_weight_gemm(n, in, out), x.data(), dy.data(), dw.data());
  reference::dense_backward(x.data(), wt.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                            db_ref.data(), n, in, out);
  for (int i = 0; i < n * out; ++i) EXPECT_NEAR(y[i], y_ref[i], 1e-5);
  for (int i = 0; i < n * in; ++i) EXPECT_NEAR(dx[i], dx_ref[i], 1e-5);
  for (int i = 0; i < out * in; ++i) EXPECT_NEAR(dw[i], dw_ref[i], 1e-5);
  // cuBLAS's constraints: leading dimensions at least the rows of each stored matrix.
  for (const GemmCall& g : {dense_forward_gemm(n, in, out), dense_backward_data_gemm(n, in, out),
                            dense_backward_weight_gemm(n, in, out)}) {
    EXPECT_GE(g.lda, std::max(1, g.trans_a ? g.k : g.m));
    EXPECT_GE(g.ldb, std::max(1, g.trans_b ? g.n : g.k));
    EXPECT_GE(g.ldc, std::max(1, g.m));
  }
}

TEST(CudaSchedule, AlgorithmChoiceRespectsBudgetDeterminismAndTiming) {
  // Heuristics: preference order, skipping failures, over-budget and non-deterministic.
  std::vector<AlgorithmCandidate> h = {{6, true, 900 << 20, true, -1},
                                       {1, false, 0, true, -1},
                                       {2, true, 10, false, -1},
                                       {0, true, 0, true, -1}};
  EXPECT_EQ(choose_algorithm(h, 512 << 20, true), 0);
  EXPECT_EQ(choose_algorithm(h, 512 << 20, false), 2);
  EXPECT_EQ(choose_algorithm(h, size_t(1) << 30, true), 6);
  // Timed: the fastest acceptable one.
  std::vector<AlgorithmCandidate> t = {
      {0, true, 0, true, 3.0f}, {1, true, 0, true, 1.0f}, {2, true, 0, false, 0.5f}};
  EXPECT_EQ(choose_algorithm(t, 0, true), 1);
  EXPECT_EQ(choose_algorithm({}, 0, true), -1);
}

// The routes' contests (conv1's forward and weight gradient): the fastest
// contender, or the forced one where it is a contender; a forced route that
// is not one is the user's error, naming the choice and what would run.
TEST(CudaSchedule, FastestRouteTakesTheLowestTimeOrTheForcedContender) {
  const std::vector<std::pair<std::string, float>> times = {
      {"cudnn", 0.46f}, {"direct", -1.0f}, {"fused", 0.12f}};
  EXPECT_EQ(fastest_route(times, "", "conv1's forward"), "fused");
  EXPECT_EQ(fastest_route(times, "cudnn", "conv1's forward"), "cudnn");
  EXPECT_EQ(fastest_route({{"cudnn", 0.0f}, {"fused", -1.0f}}, "", "x"), "cudnn");
  try {
    fastest_route(times, "direct", "conv1's forward");
    FAIL() << "a forced route that is not a contender";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conv1's forward"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'direct'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("fused does"), std::string::npos) << e.what();
  }
}

// What the step keeps grows with the batch too (its landing buffer), so the
// search counts it at each batch it tries.
TEST(CudaSchedule, LargestBatchThatFitsIsTheBoundary) {
  const ModelSpec spec = default_model_spec();
  const size_t budget = size_t(256) << 20;
  const int b = largest_batch_that_fits(spec, 200, 200, budget);
  ASSERT_GT(b, 0);
  auto need = [&](int batch) {  // planned_step_bytes, spelled out
    const NetworkShape shape = infer_shapes(spec, batch, 200, 200);
    return plan_memory(build_cuda_schedule(shape).tensors).arena_bytes + persistent_bytes(shape);
  };
  EXPECT_EQ(planned_step_bytes(spec, b, 200, 200), need(b));
  EXPECT_LE(need(b), budget);
  EXPECT_GT(need(b + 1), budget);
  const NetworkShape one = infer_shapes(spec, 1, 200, 200);
  EXPECT_EQ(persistent_bytes(infer_shapes(spec, 2, 200, 200)) - persistent_bytes(one),
            size_t(3) * 200 * 200 * sizeof(float))
      << "one more image in the landing buffer";
  EXPECT_EQ(largest_batch_that_fits(spec, 200, 200, persistent_bytes(one)), 0);
}

// The landing buffer (cuda_step.h) takes exactly the step's fp32 input, in
// every map format: run_input() copies it whole into the input tensor (at
// these sizes the larger of the two forms it holds: test_byte_images.cpp).
TEST(CudaSchedule, TheLandingBufferHoldsExactlyTheStepsInput) {
  for (const char* text : {"", "conv 8 kernel=3 pool=2 pad=same bn\ngap\ndense 2\n"}) {
    const ModelSpec spec = *text ? parse_model_spec(text) : default_model_spec();
    for (int batch : {1, 7, 50}) {
      const NetworkShape shape = infer_shapes(spec, batch, 64, 48);
      for (MapFormat format : {MapFormat{false, false}, MapFormat{true, false},
                               MapFormat{false, true}, MapFormat{true, true}}) {
        const CudaSchedule s = build_cuda_schedule(shape, {}, format);
        EXPECT_EQ(s.tensors[size_t(s.input)].bytes, landing_layout(shape).float_bytes);
        EXPECT_EQ(s.tensors[size_t(s.input)].bytes, landing_bytes(shape))
            << text << " batch " << batch << " bf16 " << format.bf16 << " nhwc "
            << format.channels_last;
      }
    }
  }
}

// cuDNN's descriptors count elements in 32 bits: the paper's network at
// 200x200 has 32 x 198 x 198 = 1,254,528 elements per image in conv1's
// output, so batch 1711 is the last within 2^31 - 1 (the H200 run of batch
// 1800 failed inside cudnnSetTensor4dDescriptor before this check).
TEST(CudaSchedule, LargestTensorAndTheBatchWithinCudnnsElementLimit) {
  const ModelSpec spec = default_model_spec();
  const LargestTensor at1800 =
      largest_tensor(build_cuda_schedule(infer_shapes(spec, 1800, 200, 200)));
  EXPECT_EQ(at1800.elements, int64_t(1800) * 32 * 198 * 198);
  EXPECT_EQ(at1800.name, "conv1's output");
  EXPECT_GT(at1800.elements, kCudnnMaxElements);
  const int b = largest_batch_within_element_limit(spec, 200, 200);
  EXPECT_EQ(b, 1711);
  EXPECT_LE(largest_tensor(build_cuda_schedule(infer_shapes(spec, b, 200, 200))).elements,
            kCudnnMaxElements);
  EXPECT_GT(largest_tensor(build_cuda_schedule(infer_shapes(spec, b + 1, 200, 200))).elements,
            kCudnnMaxElements);
}

}  // namespace
}  // namespace histocnn::cuda
