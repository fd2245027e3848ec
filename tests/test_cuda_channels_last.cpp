// --channels-last on the CUDA step, verified without a GPU: the layout
// arithmetic (map_layout.h) against explicit index formulas, our pool kernels
// in their channels-last thread structure against the reference layers, and
// the whole channels-last schedule executed on the host
// (cuda_schedule_on_host.h) against the reference network (fp32) and against
// the channels-first schedule (bf16). On a GPU, `histocnn selftest --device
// cuda --channels-last` checks the compiled step against the CPU backend.
#include <gtest/gtest.h>

#include "cuda_schedule_on_host.h"

namespace histocnn::cuda {
namespace {

TEST(MapLayout, IndexesAsTheExplicitFormulasAndInvertsThem) {
  const int n = 2, c = 5, h = 3, w = 4;
  for (bool last : {false, true}) {
    const MapLayout l{c, h, w, last};
    std::vector<int> seen(size_t(n * c * h * w), 0);
    for (int i = 0; i < n; ++i)
      for (int ch = 0; ch < c; ++ch)
        for (int y = 0; y < h; ++y)
          for (int x = 0; x < w; ++x) {
            const int64_t want = last ? ((i * h + y) * w + x) * c + ch  // NHWC (KRSC)
                                      : ((i * c + ch) * h + y) * w + x;
            const int64_t at = l.at(i, ch, y, x);
            ASSERT_EQ(at, want);
            EXPECT_EQ(at, l.at(i, ch, 0, 0) + y * l.row_stride() + x * l.col_stride());
            const MapCoords m = l.coords(at);
            EXPECT_EQ(m.n, i);
            EXPECT_EQ(m.c, ch);
            EXPECT_EQ(m.y, y);
            EXPECT_EQ(m.x, x);
            EXPECT_EQ(l.channel_of(at), ch);
            ++seen[size_t(at)];
          }
    for (int s : seen) ASSERT_EQ(s, 1);  // a bijection
  }
}

// The staged batch into conv1's channels-last input, KCRS weights into KRSC
// filters (rounded to bf16 as they go), and KRSC gradients back.
TEST(MapLayout, RelayoutRoundTripsAndConvertsTheType) {
  const int k = 4, c = 3, r = 3, s = 3;
  const auto kcrs = testing::random_vector(size_t(k * c * r * s), 3);
  std::vector<float> krsc(kcrs.size()), back(kcrs.size());
  on_host::relayout(kcrs.data(), krsc.data(), k, MapLayout{c, r, s, true});
  for (int o = 0; o < k; ++o)
    for (int i = 0; i < c; ++i)
      for (int y = 0; y < r; ++y)
        for (int x = 0; x < s; ++x)
          ASSERT_EQ(krsc[size_t(((o * r + y) * s + x) * c + i)],
                    kcrs[size_t(((o * c + i) * r + y) * s + x)]);
  on_host::relayout(krsc.data(), back.data(), k, MapLayout{c, r, s, false});
  EXPECT_EQ(back, kcrs);
  std::vector<Bf16> krsc16(kcrs.size());
  on_host::relayout(kcrs.data(), krsc16.data(), k, MapLayout{c, r, s, true});
  on_host::relayout(krsc16.data(), back.data(), k, MapLayout{c, r, s, false});
  for (size_t i = 0; i < kcrs.size(); ++i) ASSERT_EQ(back[i], round_to_bf16(kcrs[i])) << i;
}

TEST(PoolKernelsChannelsLast, BandsCoverThePixelsAndFillTheGpu) {
  for (int n : {1, 2, 10, 50, 150, 1711})
    for (int c : {1, 3, 32, 33, 64})
      for (int64_t pixels : {1, 7, 8, 81, 2116, 39204}) {
        const int bands = channel_sum_bands(n, c, pixels);
        ASSERT_GE(bands, 1);
        if (pixels >= 8) {
          EXPECT_GE(pixels / bands, 8) << n << " " << c << " " << pixels;
        }
        const int64_t blocks = int64_t(n) * bands * ((c + 31) / 32);
        if (pixels / 8 >= 4096) {
          EXPECT_GE(blocks, 4096) << n << " " << c << " " << pixels;
        }
        const PoolMaps maps{n, {c, int(pixels), 1, true}, true, 1};
        EXPECT_EQ(bias_partial_rows(maps), n * bands);
      }
  EXPECT_EQ(bias_partial_rows(PoolMaps{7, {32, 10, 10, false}, false, 2}), 7);  // per plane
}

struct LastPoolCase {
  int n, c, h, w, p;
};
// ctest lists each case by its shape, not as raw bytes.
void PrintTo(const LastPoolCase& c, std::ostream* os) {
  *os << c.n << "x" << c.c << "x" << c.h << "x" << c.w << "_pool" << c.p;
}

class PoolKernelsChannelsLast : public ::testing::TestWithParam<LastPoolCase> {};

// A map in channels-first order and the same map channels last.
std::vector<float> laid_out(const std::vector<float>& nchw, int n, const MapLayout& to) {
  std::vector<float> out(nchw.size());
  on_host::relayout(nchw.data(), out.data(), n, to);
  return out;
}

// Forward into a channels-last pooled map (a block that is not the last) and
// a channels-first one (the last block), backward from each, against the
// reference layers on the channels-first map.
TEST_P(PoolKernelsChannelsLast, ForwardAndBackwardEqualTheReferenceLayers) {
  const LastPoolCase pc = GetParam();
  const MapLayout act_last{pc.c, pc.h, pc.w, true};
  const size_t act_count = size_t(pc.n) * pc.c * pc.h * pc.w;
  const int ph = pc.h / pc.p, pw = pc.w / pc.p;
  const size_t pooled_count = size_t(pc.n) * pc.c * ph * pw;
  auto raw = testing::random_vector(act_count, 31);
  for (size_t i = 3; i < raw.size(); i += 11) raw[i] = raw[i - 1];  // exact ties
  const auto bias = testing::random_vector(size_t(pc.c), 32, -0.5f, 0.5f);
  std::vector<float> activated(act_count), want_pooled(pooled_count);
  for (size_t i = 0; i < act_count; ++i)
    activated[i] = std::max(raw[i] + bias[(i / size_t(pc.h * pc.w)) % size_t(pc.c)], 0.0f);
  reference::maxpool_forward(activated.data(), want_pooled.data(), pc.n, pc.c, pc.h, pc.w, pc.p);
  const auto d_pooled = testing::random_vector(pooled_count, 33);
  std::vector<float> masked(pooled_count), want_d_act(act_count);
  reference::relu_backward(want_pooled.data(), d_pooled.data(), masked.data(),
                           int64_t(pooled_count));
  reference::maxpool_backward(activated.data(), masked.data(), want_d_act.data(), pc.n, pc.c, pc.h,
                              pc.w, pc.p);
  const auto raw_last = laid_out(raw, pc.n, act_last);
  for (bool pooled_last : {true, false}) {
    const PoolMaps maps{pc.n, act_last, pooled_last, pc.p};
    const MapLayout pl = maps.pooled();
    std::vector<float> pooled(pooled_count);
    std::vector<uint8_t> argmax(pooled_count);
    on_host::max_pool_forward(raw_last.data(), bias.data(), pooled.data(), argmax.data(), maps);
    EXPECT_EQ(pooled, pooled_last ? laid_out(want_pooled, pc.n, pl) : want_pooled);
    std::vector<float> d_act(act_count, NAN);
    std::vector<float> partials(size_t(bias_partial_rows(maps)) * size_t(pc.c), NAN),
        db(size_t(pc.c));
    const auto dp = pooled_last ? laid_out(d_pooled, pc.n, pl) : d_pooled;
    on_host::pool_relu_backward(nullptr, dp.data(), argmax.data(), d_act.data(), partials.data(),
                                maps);
    EXPECT_EQ(d_act, laid_out(want_d_act, pc.n, act_last)) << "pooled last " << pooled_last;
    on_host::column_sums(partials.data(), bias_partial_rows(maps), pc.c, db.data());
    for (int ch = 0; ch < pc.c; ++ch) {
      double b = 0;
      for (int i = 0; i < pc.n; ++i)
        for (int e = 0; e < pc.h * pc.w; ++e)
          b += want_d_act[(size_t(i) * pc.c + ch) * pc.h * pc.w + e];
      EXPECT_NEAR(db[size_t(ch)], b, 1e-5 * std::max(1.0, std::abs(b))) << "channel " << ch;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolKernelsChannelsLast,
                         ::testing::Values(LastPoolCase{2, 3, 8, 8, 2}, LastPoolCase{3, 5, 9, 7, 2},
                                           LastPoolCase{1, 2, 11, 10, 3},
                                           LastPoolCase{2, 40, 16, 17, 8},
                                           LastPoolCase{1, 33, 33, 35, 2}));

// A block without a pool: ReLU backward in place, sums per image band.
TEST(PoolKernelsChannelsLast, WithoutPoolingIsReluBackwardInPlace) {
  const PoolMaps maps{3, {5, 4, 6, true}, true, 1};
  auto y = testing::random_vector(3 * 5 * 24, 3, -1, 1);
  for (float& v : y) v = std::max(v, 0.0f);
  auto d = testing::random_vector(y.size(), 4);
  std::vector<float> want(d.size());
  reference::relu_backward(y.data(), d.data(), want.data(), int64_t(d.size()));
  std::vector<float> partials(size_t(bias_partial_rows(maps)) * 5), db(5);
  on_host::pool_relu_backward(y.data(), d.data(), nullptr, d.data(), partials.data(), maps);
  EXPECT_EQ(d, want);
  on_host::column_sums(partials.data(), bias_partial_rows(maps), 5, db.data());
  for (int c = 0; c < 5; ++c) {
    double b = 0;
    for (size_t i = size_t(c); i < want.size(); i += 5) b += want[i];
    EXPECT_NEAR(db[size_t(c)], b, 1e-5);
  }
}

TEST(CudaScheduleChannelsLast, SaysWhichNetworksItCannotRun) {
  auto shape = [](const char* spec) { return infer_shapes(parse_model_spec(spec), 2, 16, 16); };
  EXPECT_EQ(channels_last_unsupported(shape("conv 8 kernel=3 pool=1; conv 8 pool=2; dense 2")), "");
  EXPECT_EQ(channels_last_unsupported(shape("conv 8 kernel=3 pool=2 bn; gap; dense 2")), "");
  EXPECT_NE(channels_last_unsupported(shape("conv 8 kernel=3 pool=2; conv 8 pool=1; dense 2"))
                .find("last conv block has no pool"),
            std::string::npos);
  try {
    build_cuda_schedule(shape("conv 8 kernel=3 pool=2 bn; conv 8 pool=1 bn; dense 2"), {},
                        {false, true});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--channels-last: the last conv block has no pool", 0),
              0u)
        << e.what();
  }
}

// The maps' layouts, the bias partials' rows, the extra input copy and the
// persistent filters, for the paper's network.
TEST(CudaScheduleChannelsLast, LaysOutEveryBlockLastButTheDensePartsInput) {
  const NetworkShape shape = infer_shapes(default_model_spec(), 50, 200, 200);
  for (bool bf16 : {false, true}) {
    const CudaSchedule s = build_cuda_schedule(shape, {}, {bf16, true});
    EXPECT_TRUE(s.channels_last);
    EXPECT_NE(s.conv_input, s.input);
    EXPECT_EQ(s.tensors[size_t(s.conv_input)].name, "input.channels_last");
    EXPECT_EQ(s.tensors[size_t(s.conv_input)].bytes,
              s.tensors[size_t(s.input)].bytes / (bf16 ? 2 : 1));
    for (size_t k = 0; k < s.convs.size(); ++k) {
      const auto& c = s.convs[k];
      EXPECT_TRUE(c.channels_last);
      EXPECT_EQ(c.pooled_channels_last, k + 1 < s.convs.size()) << k;
      EXPECT_EQ(s.tensors[size_t(c.bias_partials)].bytes,
                size_t(bias_partial_rows(c.pool_maps())) * size_t(c.y.c) * 4);
    }
    EXPECT_EQ(s.denses.front().in, s.convs.back().pooled_dims.stride_n());
    EXPECT_NO_THROW(validate_plan(s.tensors, plan_memory(s.tensors)));
    EXPECT_EQ(persistent_bytes(shape, {bf16, true}) - persistent_bytes(shape, {bf16, false}),
              size_t(conv_weight_count(shape)) * 2 * (bf16 ? 2 : 4));
  }
}

// The cases whose network --channels-last can run (plus `extra`).
std::vector<Case> channels_last_cases(const std::vector<Case>& all, std::vector<Case> extra = {}) {
  for (const Case& c : all)
    if (channels_last_unsupported(
            infer_shapes(parse_model_spec(c.spec), c.batch, c.height, c.width))
            .empty())
      extra.push_back(c);
  return extra;
}

class CudaScheduleChannelsLastOnHost : public ::testing::TestWithParam<Case> {};

TEST_P(CudaScheduleChannelsLastOnHost, MatchesTheReferenceNetworkPlannedAndPerTensor) {
  expect_schedule_matches_reference(GetParam(), true);
}

// bf16 channels last computes what bf16 channels first does, laid out
// otherwise: the same loss and probabilities; the same gradients but for the
// order of the bias sums (conv1's weight gradient: our direct kernel in both,
// its tile staged from either layout, the same sums).
TEST_P(CudaScheduleChannelsLastOnHost, Bf16IsTheChannelsFirstStepLaidOutOtherwise) {
  const Case& c = GetParam();
  const auto [shape, params, images, labels] = schedule_inputs(c);
  const BatchMeta meta{c.count, 0, 0};
  const HostRun first = run_schedule(shape, params, images.data(), labels.data(), meta, c.training,
                                     99, 4, true, {}, nullptr, {}, true, false);
  const HostRun last = run_schedule(shape, params, images.data(), labels.data(), meta, c.training,
                                    99, 4, true, {}, nullptr, {}, true, true);
  EXPECT_EQ(last.loss, first.loss);
  EXPECT_EQ(last.probs, first.probs);
  for (const auto& info : first.grads.layout) {
    double largest = 0;
    for (int64_t i = 0; i < info.size; ++i)
      largest = std::max(largest, double(std::abs(first.grads.data(info)[i])));
    for (int64_t i = 0; i < info.size; ++i)
      ASSERT_NEAR(last.grads.data(info)[i], first.grads.data(info)[i],
                  1e-5 * std::max(largest, 1e-3))
          << info.name << "[" << i << "]";
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, CudaScheduleChannelsLastOnHost,
                         ::testing::ValuesIn(channels_last_cases(
                             testing::architectures(),
                             {{"UnpooledBlockFirst",
                               "conv 8 kernel=3 pool=1; conv 40 kernel=3 pool=2; dense 3", 3, 12,
                               11, 3, false}})),
                         testing::case_name);

// Batch norm channels last: our kernels in fp32 (channels-first fp32 keeps
// cuDNN's calls) over NHWC maps, against the reference layers on the same
// values: statistics, running statistics, ReLU(BN(x)), and the backward pass.
TEST(BatchNormKernelsChannelsLast, Fp32KernelsEqualTheReferenceLayers) {
  const int n = 3, channels = 37, h = 7, w = 9;  // two channel tiles, the second partial
  const MapLayout last{channels, h, w, true};
  const size_t total = size_t(n) * channels * h * w;
  const auto x = testing::random_vector(total, 41, -2, 3), d = testing::random_vector(total, 42);
  const auto gamma = testing::random_vector(channels, 43, 0.5f, 1.5f);
  const auto beta = testing::random_vector(channels, 44, -0.5f, 0.5f);
  std::vector<float> mean(channels), inv_std(channels), running_mean(channels, 0.0f),
      running_var(channels, 1.0f), y(total);
  on_host::bn_relu_forward(laid_out(x, n, last).data(), y.data(), gamma.data(), beta.data(),
                           mean.data(), inv_std.data(), running_mean.data(), running_var.data(),
                           true, n, last);
  std::vector<float> want_y(total), want_mean(channels), want_var(channels);
  reference::batchnorm_forward_train(x.data(), gamma.data(), beta.data(), want_y.data(),
                                     want_mean.data(), want_var.data(), n, channels, h * w);
  reference::relu_forward(want_y.data(), want_y.data(), int64_t(total));
  for (int c = 0; c < channels; ++c) {
    EXPECT_NEAR(mean[size_t(c)], want_mean[size_t(c)], 1e-5) << c;
    EXPECT_NEAR(inv_std[size_t(c)], 1 / std::sqrt(want_var[size_t(c)] + kBatchNormEpsilon), 1e-4);
    EXPECT_NEAR(running_mean[size_t(c)], 0.1f * want_mean[size_t(c)], 1e-6) << c;
  }
  const auto want_y_last = laid_out(want_y, n, last);
  for (size_t i = 0; i < total; ++i) ASSERT_NEAR(y[i], want_y_last[i], 1e-4) << i;
  std::vector<float> dgamma(channels), dbeta(channels), dx(total);
  on_host::bn_backward(laid_out(d, n, last).data(), laid_out(x, n, last).data(), dx.data(),
                       gamma.data(), mean.data(), inv_std.data(), dgamma.data(), dbeta.data(), n,
                       last);
  std::vector<float> want_dx(total), want_dgamma(channels), want_dbeta(channels);
  reference::batchnorm_backward(x.data(), gamma.data(), want_mean.data(), want_var.data(), d.data(),
                                want_dx.data(), want_dgamma.data(), want_dbeta.data(), n, channels,
                                h * w);
  for (int c = 0; c < channels; ++c) {
    EXPECT_NEAR(dbeta[size_t(c)], want_dbeta[size_t(c)], 1e-4) << c;
    EXPECT_NEAR(dgamma[size_t(c)], want_dgamma[size_t(c)], 1e-4) << c;
  }
  const auto want_dx_last = laid_out(want_dx, n, last);
  for (size_t i = 0; i < total; ++i) ASSERT_NEAR(dx[i], want_dx_last[i], 1e-4) << i;
}

class CudaScheduleChannelsLastBatchNorm : public ::testing::TestWithParam<Case> {};

// Training (gradients and running statistics), then inference with them.
TEST_P(CudaScheduleChannelsLastBatchNorm, MatchesTheReferenceInTrainingAndInference) {
  expect_batch_norm_schedule_matches_reference(GetParam(), true);
}

// bf16: the channels-first bf16 step's results, the sums in another order.
TEST_P(CudaScheduleChannelsLastBatchNorm, Bf16IsTheChannelsFirstStepLaidOutOtherwise) {
  const Case& c = GetParam();
  const auto [shape, params, images, labels] = batch_norm_inputs(c);
  const BatchMeta meta{c.count, 0, 0};
  Buffers first_buffers = Buffers::initial(shape), last_buffers = Buffers::initial(shape);
  const HostRun first = run_schedule(shape, params, images.data(), labels.data(), meta, true, 5, 2,
                                     true, {}, &first_buffers, {}, true, false);
  const HostRun last = run_schedule(shape, params, images.data(), labels.data(), meta, true, 5, 2,
                                    true, {}, &last_buffers, {}, true, true);
  EXPECT_NEAR(last.loss, first.loss, 1e-3 * std::max(1.0, first.loss));
  testing::expect_gradients_match(last.grads, first.grads, 1e-4, 2e-2, "bf16 channels last");
  for (size_t i = 0; i < first_buffers.values.size(); ++i)
    EXPECT_NEAR(last_buffers.values[i], first_buffers.values[i], 1e-4) << i;
}

INSTANTIATE_TEST_SUITE_P(
    BatchNorm, CudaScheduleChannelsLastBatchNorm,
    ::testing::ValuesIn(channels_last_cases(testing::batch_norm_architectures())),
    testing::case_name);

}  // namespace
}  // namespace histocnn::cuda
