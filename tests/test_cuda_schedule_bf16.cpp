// --precision bf16 on the CUDA step, verified without a GPU: its schedule
// executed on the host (cuda_schedule_on_host.h) with the conv blocks' maps in
// bf16 against an independent bf16 network and near the fp32 reference; the
// plan's two-byte tensors; batch norm as our kernels.
#include <gtest/gtest.h>

#include "cuda_schedule_on_host.h"

namespace histocnn::cuda {
namespace {

// An independent bf16 network for the comparison below: the reference layers,
// with bf16 rounding wherever --precision bf16 keeps a value in bf16 (conv1's
// input, the weights the convolutions read, every conv output, pooled map and
// their gradients; cuDNN's weight gradients except conv1's, which our kernel
// sums in fp32) and fp32 everywhere else. No dropout, no batch norm.
// PaperNet's loss on bf16 stays within 1% of fp32's, but its conv gradients
// can move by a third of their largest value: max-pool and ReLU make the
// gradient discontinuous, and rounding the input and weights by a bf16 unit
// (2^-8) moves the fp32 reference's gradients as far. So the test holds bf16
// to this network, not to fp32's gradients.
std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = round_to_bf16(x);
  return v;
}

reference::NetworkResult bf16_reference(const NetworkShape& shape, const Parameters& params,
                                        const float* images, const int32_t* labels, int count) {
  const int n = shape.batch;
  reference::NetworkResult r;
  r.grads = Parameters::zeros(shape);
  auto w = [&](const std::string& name) {
    const auto& i = params.info(name);
    return std::vector<float>(params.data(i), params.data(i) + i.size);
  };
  auto g = [&](const std::string& name) { return r.grads.data(r.grads.info(name)); };
  std::vector<float> x(size_t(n) * 3 * shape.height * shape.width, 0.0f);
  std::copy(images, images + x.size() / size_t(n) * size_t(count), x.begin());
  std::vector<std::vector<float>> inputs, acts, pooled;  // per conv block
  x = rounded(x);
  for (size_t k = 0; k < shape.convs.size(); ++k) {
    const ConvShape& cs = shape.convs[k];
    const std::string conv = "conv" + std::to_string(k + 1);
    const int64_t plane = int64_t(cs.conv_h) * cs.conv_w;
    std::vector<float> y(size_t(n * cs.out_c * plane));
    reference::conv2d_forward(x.data(), rounded(w(conv + ".weight")).data(), nullptr, y.data(), n,
                              cs.in_c, cs.in_h, cs.in_w, cs.out_c, cs.kernel, cs.pad);
    y = rounded(y);
    const auto b = w(conv + ".bias");
    for (size_t i = 0; i < y.size(); ++i)
      y[i] = std::max(y[i] + b[(i / size_t(plane)) % size_t(cs.out_c)], 0.0f);
    std::vector<float> p(size_t(n * cs.out_c * cs.out_h * cs.out_w));
    if (cs.pool > 1)
      reference::maxpool_forward(y.data(), p.data(), n, cs.out_c, cs.conv_h, cs.conv_w, cs.pool);
    else
      p = y;
    inputs.push_back(x);
    acts.push_back(y);
    pooled.push_back(rounded(p));
    x = pooled.back();
  }
  const ConvShape& last = shape.convs.back();
  const int last_hw = last.out_h * last.out_w;
  if (shape.global_pool) {
    std::vector<float> means(size_t(n * last.out_c));
    reference::global_avgpool_forward(x.data(), means.data(), n, last.out_c, last_hw);
    x = means;
  }
  std::vector<std::vector<float>> dense_in;
  for (size_t j = 0; j < shape.denses.size(); ++j) {
    const DenseShape& ds = shape.denses[j];
    const std::string fc = "fc" + std::to_string(j + 1);
    std::vector<float> y(size_t(n * ds.out));
    reference::dense_forward(x.data(), w(fc + ".weight").data(), w(fc + ".bias").data(), y.data(),
                             n, ds.in, ds.out);
    if (ds.relu) reference::relu_forward(y.data(), y.data(), int64_t(y.size()));
    dense_in.push_back(x);
    x = y;
  }
  std::vector<float> dy(x.size());
  r.probs.resize(x.size());
  r.loss = reference::softmax_cross_entropy(x.data(), labels, n, shape.classes(), count, dy.data(),
                                            r.probs.data());
  for (size_t j = shape.denses.size(); j-- > 0;) {
    const DenseShape& ds = shape.denses[j];
    const std::string fc = "fc" + std::to_string(j + 1);
    if (ds.relu) reference::relu_backward(x.data(), dy.data(), dy.data(), int64_t(dy.size()));
    std::vector<float> dx(dense_in[j].size());
    reference::dense_backward(dense_in[j].data(), w(fc + ".weight").data(), dy.data(), dx.data(),
                              g(fc + ".weight"), g(fc + ".bias"), n, ds.in, ds.out);
    x = dense_in[j];
    dy = dx;
  }
  if (shape.global_pool) {
    std::vector<float> dx(pooled.back().size());
    reference::global_avgpool_backward(dy.data(), dx.data(), n, last.out_c, last_hw);
    dy = dx;
  }
  for (size_t k = shape.convs.size(); k-- > 0;) {
    const ConvShape& cs = shape.convs[k];
    const std::string conv = "conv" + std::to_string(k + 1);
    const auto d_pooled = rounded(dy);
    std::vector<float> masked(d_pooled.size()), d_act(acts[k].size());
    reference::relu_backward(pooled[k].data(), d_pooled.data(), masked.data(),
                             int64_t(masked.size()));
    if (cs.pool > 1)
      reference::maxpool_backward(acts[k].data(), masked.data(), d_act.data(), n, cs.out_c,
                                  cs.conv_h, cs.conv_w, cs.pool);
    else
      d_act = masked;
    std::vector<float> dx(inputs[k].size()), db(size_t(cs.out_c));
    reference::conv2d_backward(inputs[k].data(), rounded(w(conv + ".weight")).data(), d_act.data(),
                               dx.data(), g(conv + ".weight"), g(conv + ".bias"), n, cs.in_c,
                               cs.in_h, cs.in_w, cs.out_c, cs.kernel, cs.pad);
    const auto& info = r.grads.info(conv + ".weight");
    if (k > 0)  // cuDNN's bf16 weight gradient
      for (int64_t i = 0; i < info.size; ++i)
        g(conv + ".weight")[i] = round_to_bf16(g(conv + ".weight")[i]);
    dy = rounded(dx);
  }
  return r;
}

// Each parameter tensor's gradient points where the reference's does
// (cosine > 0.9): what bf16 is held to, as max-pool and ReLU make gradients
// discontinuous (0.96-1.0 on these cases).
void expect_same_directions(const Parameters& got, const Parameters& want) {
  for (const auto& info : want.layout) {
    double dot = 0, a2 = 0, b2 = 0;
    for (int64_t i = 0; i < info.size; ++i) {
      const double a = got.data(info)[i], b = want.data(info)[i];
      dot += a * b, a2 += a * a, b2 += b * b;
    }
    EXPECT_GT(dot / std::sqrt(std::max(a2 * b2, 1e-300)), 0.9) << info.name;
  }
}

class CudaScheduleBf16OnHost : public ::testing::TestWithParam<Case> {};

// conv1's own routes under bf16 (the fused kernel reads the bf16 input and
// the fp32 weights, writes bf16): planned and per tensor the same bits, the
// loss within bf16's rounding of the fp32 reference, every gradient pointing
// where fp32's does; channels last the same bits as channels first.
TEST(CudaScheduleBf16OnHost, Conv1RoutesStayNearFp32) {
  const NetworkShape shape = infer_shapes(
      parse_model_spec("conv 8 kernel=3 pool=2; conv 6 kernel=3 pool=2; dense 10; dense 3"), 5, 23,
      19);
  const Parameters params = Parameters::glorot(shape, 5);
  const auto images = testing::random_vector(size_t(5) * 3 * 23 * 19, 17, 0, 1);
  const std::vector<int32_t> labels = {0, 1, 2, 1, 0};
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        5, false, 99, 4);
  const BatchMeta meta{5, 0, 0};
  // conv1's own routes, and conv2's weight gradient from the pooled
  // gradient, its data gradient by cuDNN's stand-in or from the pooled gradient.
  for (bool pooled_dgrad : {false, true}) {
    const std::vector<ConvRoutes> routes = {ConvRoutes{true, true},
                                            ConvRoutes{false, true, pooled_dgrad}};
    const std::string what = pooled_dgrad ? "conv2's data gradient pooled" : "cuDNN's";
    const HostRun planned = run_schedule(shape, params, images.data(), labels.data(), meta, false,
                                         99, 4, true, {}, nullptr, {}, true, false, routes);
    const HostRun per_tensor =
        run_schedule(shape, params, images.data(), labels.data(), meta, false, 99, 4, false, {},
                     nullptr, {}, true, false, routes);
    const HostRun last = run_schedule(shape, params, images.data(), labels.data(), meta, false, 99,
                                      4, true, {}, nullptr, {}, true, true, routes);
    EXPECT_EQ(planned.grads.values, per_tensor.grads.values) << what;
    EXPECT_EQ(planned.loss, per_tensor.loss) << what;
    EXPECT_EQ(last.loss, planned.loss) << what;
    EXPECT_NEAR(planned.loss, want.loss, 1e-2 * std::max(1.0, want.loss)) << what;
    expect_same_directions(planned.grads, want.grads);
  }
}

// --precision bf16 through the same schedule: the conv blocks' maps, their
// gradients and the weights the convolutions read are rounded to bf16; the
// dense part, the loss and every sum stay fp32. Its loss and gradients must
// stay within bf16's rounding of the reference network's, be the same bits
// planned and per tensor, and differ from fp32's (the rounding happened).
TEST_P(CudaScheduleBf16OnHost, MatchesAnIndependentBf16NetworkAndStaysNearFp32) {
  const Case& c = GetParam();
  const auto [shape, params, images, labels] = schedule_inputs(c);
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, c.training, 99, 4);
  const BatchMeta meta{c.count, 0, 0};
  const HostRun planned = run_schedule(shape, params, images.data(), labels.data(), meta,
                                       c.training, 99, 4, true, {}, nullptr, {}, true);
  const HostRun per_tensor = run_schedule(shape, params, images.data(), labels.data(), meta,
                                          c.training, 99, 4, false, {}, nullptr, {}, true);
  EXPECT_EQ(planned.grads.values, per_tensor.grads.values);
  EXPECT_EQ(planned.loss, per_tensor.loss);
  EXPECT_NEAR(planned.loss, want.loss, 1e-2 * std::max(1.0, want.loss));
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(planned.probs[size_t(i)], want.probs[size_t(i)], 1e-2);
  const HostRun fp32 =
      run_schedule(shape, params, images.data(), labels.data(), meta, c.training, 99, 4, true);
  EXPECT_NE(planned.grads.values, fp32.grads.values);
  // Each tensor's gradient points where fp32's does (what `selftest --device
  // cuda` holds the GPU's bf16 step to; 0.96-1.0 here).
  expect_same_directions(planned.grads, want.grads);
  // Against the independent bf16 network (no dropout drawn): the same
  // roundings in the same places give the same values but for the order of
  // fp32 sums, which can tip a value rounded to bf16 by one unit (2^-8 of
  // the largest: the tolerance).
  const HostRun inference = run_schedule(shape, params, images.data(), labels.data(), meta, false,
                                         99, 4, true, {}, nullptr, {}, true);
  const auto emulated = bf16_reference(shape, params, images.data(), labels.data(), c.count);
  EXPECT_NEAR(inference.loss, emulated.loss, 1e-5 * std::max(1.0, emulated.loss));
  testing::expect_gradients_match(inference.grads, emulated.grads, 1e-6, 4e-3, "bf16 emulated");
}

// What --precision bf16 changes in the plan: the conv blocks' maps and their
// gradients take two bytes (conv1's input gets a bf16 copy, the dense part an
// fp32 one of the last map), so the arena about halves.
TEST(CudaSchedule, Bf16KeepsTheConvMapsInTwoBytes) {
  const NetworkShape shape = infer_shapes(default_model_spec(), 50, 200, 200);
  const CudaSchedule fp32 = build_cuda_schedule(shape);
  const CudaSchedule bf16 = build_cuda_schedule(shape, {}, MapFormat{true});
  EXPECT_FALSE(fp32.bf16);
  EXPECT_EQ(std::count(fp32.bf16_tensor.begin(), fp32.bf16_tensor.end(), true), 0);
  EXPECT_EQ(bf16.conv_input, bf16.convs[0].src);
  EXPECT_NE(bf16.conv_input, bf16.input);
  EXPECT_EQ(bf16.denses[0].src, bf16.features);
  EXPECT_NE(bf16.features, bf16.convs.back().pooled);
  for (size_t k = 0; k < bf16.convs.size(); ++k) {
    const auto& c = bf16.convs[k];
    const std::pair<int, int64_t> maps[] = {{c.src, c.x.count()},
                                            {c.conv_out, c.y.count()},
                                            {c.pooled, c.pooled_dims.count()},
                                            {c.d_pooled, c.pooled_dims.count()},
                                            {c.d_act, c.y.count()},
                                            {c.d_conv_out, c.y.count()}};
    for (const auto& [id, elements] : maps) {
      EXPECT_TRUE(bf16.bf16_tensor[size_t(id)]) << bf16.tensors[size_t(id)].name;
      EXPECT_EQ(bf16.tensors[size_t(id)].bytes, size_t(elements) * 2)
          << bf16.tensors[size_t(id)].name;
    }
    EXPECT_FALSE(bf16.bf16_tensor[size_t(c.bias_partials)]);
  }
  for (int id : {bf16.input, bf16.features, bf16.d_features, bf16.logits})
    EXPECT_FALSE(bf16.bf16_tensor[size_t(id)]) << bf16.tensors[size_t(id)].name;
  const size_t arena32 = plan_memory(fp32.tensors).arena_bytes;
  const size_t arena16 = plan_memory(bf16.tensors).arena_bytes;
  EXPECT_LT(arena16, arena32 * 6 / 10);
  EXPECT_GT(arena16, arena32 * 4 / 10);
  EXPECT_NO_THROW(validate_plan(bf16.tensors, plan_memory(bf16.tensors)));
  EXPECT_EQ(persistent_bytes(shape, MapFormat{true}) - persistent_bytes(shape),
            size_t(shape.parameter_count()) * 4);
  // Batch norm: cuDNN's calls in fp32, our kernels over per-plane partial
  // sums (two [N, C] arrays) under bf16.
  const NetworkShape bn =
      infer_shapes(parse_model_spec("conv 8 kernel=3 pool=2 bn; dense 2"), 2, 16, 16);
  EXPECT_EQ(build_cuda_schedule(bn).convs[0].bn_partials, -1);
  const CudaSchedule bn16 = build_cuda_schedule(bn, {}, MapFormat{true});
  const int partials = bn16.convs[0].bn_partials;
  ASSERT_GE(partials, 0);
  EXPECT_EQ(bn16.tensors[size_t(partials)].bytes, size_t(2 * 2 * 8) * sizeof(float));
  EXPECT_FALSE(bn16.bf16_tensor[size_t(partials)]);
  EXPECT_TRUE(bn16.bf16_tensor[size_t(bn16.convs[0].bn_out)]);
}

// Every architecture without batch norm, and global pooling (which reads the
// fp32 copy of the last map).
std::vector<Case> bf16_architectures() {
  std::vector<Case> cases = testing::architectures();
  for (const Case& c : testing::batch_norm_architectures())
    if (std::string(c.spec).find(" bn") == std::string::npos) cases.push_back(c);
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Architectures, CudaScheduleBf16OnHost,
                         ::testing::ValuesIn(bf16_architectures()), testing::case_name);

class CudaScheduleBf16BatchNormOnHost : public ::testing::TestWithParam<Case> {};

// Batch norm under bf16 (our kernels) through the schedule: planned and per
// tensor give the same bits; the loss, probabilities, running statistics and
// gradient directions stay within bf16's reach of the fp32 reference.
TEST_P(CudaScheduleBf16BatchNormOnHost, StaysNearTheFp32Reference) {
  const Case& c = GetParam();
  const auto [shape, params, images, labels] = batch_norm_inputs(c);
  Buffers want_buffers = Buffers::initial(shape);
  const auto want = reference::network_forward_backward(shape, params, images.data(), labels.data(),
                                                        c.count, true, 5, 2, &want_buffers);
  const BatchMeta meta{c.count, 0, 0};
  Buffers planned_buffers = Buffers::initial(shape), tensor_buffers = Buffers::initial(shape);
  const HostRun planned = run_schedule(shape, params, images.data(), labels.data(), meta, true, 5,
                                       2, true, {}, &planned_buffers, {}, true);
  const HostRun per_tensor = run_schedule(shape, params, images.data(), labels.data(), meta, true,
                                          5, 2, false, {}, &tensor_buffers, {}, true);
  EXPECT_EQ(planned.grads.values, per_tensor.grads.values);
  EXPECT_EQ(planned_buffers.values, tensor_buffers.values);
  EXPECT_NEAR(planned.loss, want.loss, 2e-2 * std::max(1.0, want.loss));
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(planned.probs[size_t(i)], want.probs[size_t(i)], 2e-2);
  for (size_t i = 0; i < planned_buffers.values.size(); ++i)
    EXPECT_NEAR(planned_buffers.values[i], want_buffers.values[i],
                1e-2 * std::max(1.0f, std::abs(want_buffers.values[i])))
        << i;
  expect_same_directions(planned.grads, want.grads);
  // Inference with the running statistics.
  const HostRun inferred = run_schedule(shape, params, images.data(), labels.data(), meta, false, 5,
                                        2, true, {}, &planned_buffers, {}, true);
  const auto want_inferred = reference::network_forward_backward(
      shape, params, images.data(), labels.data(), c.count, false, 5, 2, &want_buffers);
  for (int i = 0; i < shape.classes() * c.count; ++i)
    EXPECT_NEAR(inferred.probs[size_t(i)], want_inferred.probs[size_t(i)], 2e-2);
}

INSTANTIATE_TEST_SUITE_P(BatchNorm, CudaScheduleBf16BatchNormOnHost,
                         ::testing::ValuesIn(testing::batch_norm_architectures()),
                         testing::case_name);

}  // namespace
}  // namespace histocnn::cuda
