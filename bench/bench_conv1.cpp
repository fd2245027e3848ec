// conv1's block alone at 200 px (3 -> 32 channels, 3x3, ReLU, 2x2 max pool),
// fp32: our fused kernels (backends/cpu/conv_pool_kernels.h) against what the
// CPU step ran before them — the input reordered into oneDNN's layout,
// oneDNN's convolution with its ReLU post-op, our max-pool kernels; backward:
// our pool backward (with ReLU'), then oneDNN's weight gradient. "images" is
// the batch of one call: 1 is what the micro-batched step ran per slice, 50
// a whole batch (the fused kernels never slice). Reports the convolution's
// multiply-adds x2 per second (FLOP_per_second) beside the time.
//
//   build/bench/bench_conv1 --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line)
#include <benchmark/benchmark.h>
#include <omp.h>

#include <dnnl.hpp>
#include <vector>

#include "backends/cpu/conv_pool_kernels.h"
#include "backends/cpu/pool_kernels.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

constexpr int kSize = 200, kIn = 3, kOut = 32, kKernel = 3, kConv = kSize - kKernel + 1;
constexpr int kPooled = kConv / 2;

// The block's tensors for `images` images, and oneDNN's primitives for it.
struct Block {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  int images;
  Mem input, src, weights_canon, weights, bias, conv_out, d_conv_out, pooled, d_pooled, d_weights;
  Mem pooled_fused, d_pooled_fused;
  std::vector<uint8_t> argmax;
  std::vector<float> d_weights_canon = std::vector<float>(kOut * kIn * kKernel * kKernel);
  std::vector<float> d_bias = std::vector<float>(kOut), scratch;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_pd;
  LaneLayout conv_lanes, pooled_lanes;
  ConvPoolGeometry geometry;

  explicit Block(int n) : images(n) {
    const Mem::dims strides = {1, 1}, pad = {0, 0};
    const auto any = [](Mem::dims d) { return Mem::desc(d, dt::f32, tag::any); };
    const Mem::dims w_dims = {kOut, kIn, kKernel, kKernel};
    const auto bias_md = Mem::desc({kOut}, dt::f32, tag::x);
    dnnl::post_ops relu;
    relu.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(relu);
    fwd_pd = dnnl::convolution_forward::primitive_desc(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct,
                                        any({n, kIn, kSize, kSize}), any(w_dims), bias_md,
                                        any({n, kOut, kConv, kConv}), strides, pad, pad),
        attr, engine);
    bwd_pd = dnnl::convolution_backward_weights::primitive_desc(
        dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct,
                                                 fwd_pd.src_desc(), any(w_dims), bias_md,
                                                 fwd_pd.dst_desc(), strides, pad, pad),
        engine, fwd_pd);
    input = filled(Mem::desc({n, kIn, kSize, kSize}, dt::f32, tag::nchw), 0.5f);
    src = Mem(fwd_pd.src_desc(), engine);
    weights_canon = filled(Mem::desc(w_dims, dt::f32, tag::oihw), 0.05f);
    weights = Mem(fwd_pd.weights_desc(), engine);
    dnnl::reorder(weights_canon, weights).execute(stream, weights_canon, weights);
    bias = filled(bias_md, 0.01f);
    conv_out = Mem(fwd_pd.dst_desc(), engine);
    d_conv_out = Mem(fwd_pd.dst_desc(), engine);
    d_weights = Mem(bwd_pd.diff_weights_desc(), engine);
    // oneDNN's blocks on this machine, as in the step: 16 channels for the
    // AVX-512 version, 8 for the AVX2 one.
    const tag blocks = conv_pool_isa() == "avx512" ? tag::nChw16c : tag::nChw8c;
    const auto pooled_md = Mem::desc({n, kOut, kPooled, kPooled}, dt::f32, blocks);
    pooled = Mem(pooled_md, engine);
    d_pooled = filled(pooled_md, 1.0f);
    pooled_fused = Mem(pooled_md, engine);
    d_pooled_fused = filled(pooled_md, 1.0f);
    argmax.resize(pooled_md.get_size() / sizeof(float));
    conv_lanes = *lane_layout(fwd_pd.dst_desc());
    pooled_lanes = *lane_layout(pooled_md);
    geometry.n = n, geometry.in_c = kIn, geometry.in_h = geometry.in_w = kSize;
    geometry.out_c = kOut, geometry.kernel = kKernel, geometry.pool = 2;
    scratch.resize(conv_pool_scratch_floats(geometry, omp_get_max_threads()));
  }
  Mem filled(const Mem::desc& md, float value) {
    Mem m(md, engine);
    std::vector<float> v(md.get_size() / sizeof(float), value);
    std::copy(v.begin(), v.end(), static_cast<float*>(m.get_data_handle()));
    return m;
  }
  template <typename T>
  static T* at(const Mem& m) {
    return static_cast<T*>(m.get_data_handle());
  }
  void fused_forward() {
    conv_pool_forward(at<const float>(input), geometry, at<const float>(weights_canon),
                      at<const float>(bias), dt::f32, pooled_fused.get_data_handle(), argmax.data(),
                      pooled_lanes, scratch.data());
  }
  void onednn_forward() {
    dnnl::reorder(input, src).execute(stream, input, src);
    dnnl::convolution_forward(fwd_pd).execute(stream, {{DNNL_ARG_SRC, src},
                                                       {DNNL_ARG_WEIGHTS, weights},
                                                       {DNNL_ARG_BIAS, bias},
                                                       {DNNL_ARG_DST, conv_out}});
    stream.wait();
    max_pool_forward(at<const float>(conv_out), conv_lanes, at<float>(pooled), argmax.data(),
                     pooled_lanes, 2);
  }
};

double conv_flop(int images) {
  return 2.0 * images * kOut * kConv * kConv * kIn * kKernel * kKernel;
}
void report(benchmark::State& state, double flop) {
  state.counters["FLOP_per_second"] =
      benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
}

void fused_forward(benchmark::State& state) {
  if (!conv_pool_available()) return state.SkipWithError("fused kernels need AVX2 or AVX-512");
  Block b(int(state.range(0)));
  for (auto _ : state) b.fused_forward();
  report(state, conv_flop(b.images));
}

void onednn_forward(benchmark::State& state) {
  Block b(int(state.range(0)));
  for (auto _ : state) b.onednn_forward();
  report(state, conv_flop(b.images));
}

void fused_backward(benchmark::State& state) {
  if (!conv_pool_available()) return state.SkipWithError("fused kernels need AVX2 or AVX-512");
  Block b(int(state.range(0)));
  b.fused_forward();
  for (auto _ : state)
    conv_pool_backward(Block::at<const float>(b.input), b.geometry, dt::f32,
                       b.d_pooled_fused.get_data_handle(), b.argmax.data(), b.pooled_lanes,
                       b.d_weights_canon.data(), b.d_bias.data(), b.scratch.data());
  report(state, conv_flop(b.images));
}

void onednn_backward(benchmark::State& state) {
  Block b(int(state.range(0)));
  b.onednn_forward();
  auto bwd = dnnl::convolution_backward_weights(b.bwd_pd);
  const Mem d_bias(Mem::desc({kOut}, dt::f32, tag::x), b.engine);
  for (auto _ : state) {
    max_pool_relu_backward(Block::at<const float>(b.d_pooled), b.argmax.data(), b.pooled_lanes,
                           Block::at<float>(b.d_conv_out), b.conv_lanes, 2);
    bwd.execute(b.stream, {{DNNL_ARG_SRC, b.src},
                           {DNNL_ARG_DIFF_DST, b.d_conv_out},
                           {DNNL_ARG_DIFF_WEIGHTS, b.d_weights},
                           {DNNL_ARG_DIFF_BIAS, d_bias}});
    b.stream.wait();
  }
  report(state, conv_flop(b.images));
}

#define CONV1_BENCH(f) \
  BENCHMARK(f)->ArgName("images")->Arg(1)->Arg(50)->Unit(benchmark::kMillisecond)
CONV1_BENCH(fused_forward);
CONV1_BENCH(onednn_forward);
CONV1_BENCH(fused_backward);
CONV1_BENCH(onednn_backward);

}  // namespace
}  // namespace histocnn::cpu

BENCHMARK_MAIN();
