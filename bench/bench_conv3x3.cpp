// The paper network's 3x3 convolutions at 200 px (conv2: 32 -> 32 channels on
// 99 x 99, conv3: 32 -> 64 on 48 x 48; stride 1, no padding), fp32, nChw16c:
// oneDNN's direct convolution against its Winograd F(4x4, 3x3), each
// direction alone (forward with the ReLU post-op, backward data, backward
// weights + bias). "images" is one call's batch: 2 and 5 are the step's
// micro-batch slices at two threads, 50 the whole batch. FLOP_per_second
// counts the direct convolution's 2 x multiply-adds for both algorithms
// (Winograd does 2.25x fewer), so the two rates compare as speeds.
//
//   build/bench/bench_conv3x3 --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line; skips Winograd where oneDNN has none, e.g. without AVX-512)
#include <benchmark/benchmark.h>

#include <dnnl.hpp>
#include <unordered_map>

namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

enum class Direction { kForward, kBackwardData, kBackwardWeights };

struct Conv {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::primitive primitive;
  std::unordered_map<int, Mem> args;
  double flop = 0;

  Conv(dnnl::algorithm alg, Direction dir, int images, int in_c, int out_c, int size) {
    const int out = size - 2;
    const Mem::dims strides = {1, 1}, pad = {0, 0};
    const auto src_md = Mem::desc({images, in_c, size, size}, dt::f32, tag::nChw16c);
    const auto dst_md = Mem::desc({images, out_c, out, out}, dt::f32, tag::nChw16c);
    const auto w_any = Mem::desc({out_c, in_c, 3, 3}, dt::f32, tag::any);
    const auto bias_md = Mem::desc({out_c}, dt::f32, tag::x);
    dnnl::post_ops relu;
    relu.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(relu);
    const dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, src_md, w_any,
                                        bias_md, dst_md, strides, pad, pad),
        attr, engine);
    auto memory = [this](const Mem::desc& md) {
      Mem m(md, engine);
      auto* p = static_cast<float*>(m.get_data_handle());
      for (size_t i = 0; i < md.get_size() / sizeof(float); ++i)
        p[i] = float(i % 97) * 0.01f - 0.4f;
      return m;
    };
    if (dir == Direction::kForward) {
      primitive = dnnl::convolution_forward(fwd);
      args = {{DNNL_ARG_SRC, memory(src_md)},
              {DNNL_ARG_WEIGHTS, memory(fwd.weights_desc())},
              {DNNL_ARG_BIAS, memory(bias_md)},
              {DNNL_ARG_DST, memory(dst_md)}};
    } else if (dir == Direction::kBackwardData) {
      const dnnl::convolution_backward_data::primitive_desc pd(
          dnnl::convolution_backward_data::desc(alg, src_md, w_any, dst_md, strides, pad, pad),
          engine, fwd);
      primitive = dnnl::convolution_backward_data(pd);
      args = {{DNNL_ARG_DIFF_SRC, memory(src_md)},
              {DNNL_ARG_WEIGHTS, memory(pd.weights_desc())},
              {DNNL_ARG_DIFF_DST, memory(dst_md)}};
    } else {
      const dnnl::convolution_backward_weights::primitive_desc pd(
          dnnl::convolution_backward_weights::desc(alg, src_md, w_any, bias_md, dst_md, strides,
                                                   pad, pad),
          engine, fwd);
      primitive = dnnl::convolution_backward_weights(pd);
      args = {{DNNL_ARG_SRC, memory(src_md)},
              {DNNL_ARG_DIFF_DST, memory(dst_md)},
              {DNNL_ARG_DIFF_WEIGHTS, memory(pd.diff_weights_desc())},
              {DNNL_ARG_DIFF_BIAS, memory(bias_md)}};
    }
    flop = 2.0 * images * out_c * in_c * 9.0 * out * out;
  }
};

// range(0): images; range(1): direction; range(2): 1 = Winograd; range(3): 2 or 3 (the layer).
void BM_Conv3x3(benchmark::State& state) {
  const bool conv3 = state.range(3) == 3;
  const auto alg =
      state.range(2) ? dnnl::algorithm::convolution_winograd : dnnl::algorithm::convolution_direct;
  try {
    Conv conv(alg, Direction(state.range(1)), int(state.range(0)), 32, conv3 ? 64 : 32,
              conv3 ? 48 : 99);
    for (auto _ : state) {
      conv.primitive.execute(conv.stream, conv.args);
      conv.stream.wait();
    }
    state.counters["FLOP_per_second"] =
        benchmark::Counter(conv.flop, benchmark::Counter::kIsIterationInvariantRate);
  } catch (const dnnl::error& e) {
    state.SkipWithError(e.what());  // no Winograd for this CPU
  }
}

void Arguments(benchmark::internal::Benchmark* b) {
  b->ArgNames({"images", "direction", "winograd", "layer"});
  for (int layer : {2, 3})
    for (int images : {layer == 2 ? 2 : 5, 50})
      for (int direction : {0, 1, 2})
        for (int winograd : {0, 1}) b->Args({images, direction, winograd, layer});
}

BENCHMARK(BM_Conv3x3)->Apply(Arguments)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
