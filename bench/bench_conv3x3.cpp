// The paper network's 3x3 convolutions at 200 px (conv2: 32 -> 32 channels on
// 99 x 99, conv3: 32 -> 64 on 48 x 48; stride 1, no padding), fp32, nChw16c:
// oneDNN's direct convolution against its Winograd F(4x4, 3x3), each
// direction alone (forward with the ReLU post-op, backward data, backward
// weights + bias). "images" is one call's batch: 2 and 5 are the step's
// micro-batch slices at two threads, 50 the whole batch. FLOP_per_second
// counts the direct convolution's 2 x multiply-adds for both algorithms
// (Winograd does 2.25x fewer), so the two rates compare as speeds.
// BM_PooledWeightGradient: histocnn's weight and bias gradients from the
// pooled gradient (backends/cpu/pooled_wgrad_kernels.h) on the same layers
// and images, 4/7 of the pooled values positive (the rest skipped, as ReLU's
// zeros are in training); its rate counts the same direct FLOPs, so it
// compares with backward weights' (direction 2) as a speed.
// BM_WinogradPoolForward: histocnn's fused Winograd F(4x4, 3x3) forward
// with bias, ReLU and the 2x2 pool (backends/cpu/winograd_pool_kernels.h)
// on the same layers, against BM_Conv3x3's Winograd forward (direction 0,
// conv and ReLU) followed by BM_MaxPoolForward (our pool over its output),
// which it replaces in the step; BM_WinogradWeights: its weight transform,
// once per step.
// The pooled kernels run on fp32 or (precision 1, --precision bf16) bf16
// maps, in the same fp32 arithmetic: bf16 moves half the bytes.
// BM_PooledDataGradient: histocnn's data gradient from the pooled gradient
// (backends/cpu/pooled_dgrad_kernels.h) likewise, against backward data
// (direction 1), which in the step also needs the pool backward before it;
// "positive" is the share of pooled values that are (in sevenths). The
// pooled kernels' tensors are 64-byte aligned, as the step's planned arena
// is: std::vector's 16-byte alignment split every AVX-512 load in two and
// made the weight gradient ~1.3x slower here than in the step.
//
//   build/bench/bench_conv3x3 --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line; skips Winograd where oneDNN has none, e.g. without AVX-512)
#include <benchmark/benchmark.h>

#include <dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/pool_kernels.h"
#include "backends/cpu/pooled_dgrad_kernels.h"
#include "backends/cpu/pooled_wgrad_kernels.h"
#include "backends/cpu/winograd_pool_kernels.h"
#include "core/bf16.h"
#include "core/host_buffers.h"

namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

// oneDNN's activation blocks on this machine, as in the step: 16 channels
// with AVX-512, 8 with AVX2 only.
tag machine_blocks() {
  return histocnn::cpu::machine_kernel_isa() == histocnn::cpu::KernelIsa::avx512 ? tag::nChw16c
                                                                                 : tag::nChw8c;
}

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
    const auto src_md = Mem::desc({images, in_c, size, size}, dt::f32, machine_blocks());
    const auto dst_md = Mem::desc({images, out_c, out, out}, dt::f32, machine_blocks());
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

// conv2's or conv3's slice of `images` as the pooled kernels see it: the
// conv's input and pooled output in nChw16c, and what the backward kernels
// read of the pooled map: its gradient and argmax bytes, `positive` sevenths
// of them without the not-positive flag.
struct PooledLayer {
  int images, in_c, out_c, size, pooled;
  dt type;
  histocnn::cpu::LaneLayout in, out;
  histocnn::HostFloats d_pooled;  // of `type` (bf16: its first half)
  std::vector<uint8_t> argmax;
  size_t in_count() const { return size_t(images) * in_c * size * size; }
  size_t out_count() const { return size_t(images) * out_c * pooled * pooled; }
  double direct_flop() const { return 2.0 * images * out_c * in_c * 9.0 * (size - 2) * (size - 2); }
  histocnn::cpu::PooledConv conv() const { return {in_c, out_c, 3, 0, 2}; }

  PooledLayer(int images_, int layer, int64_t positive, dt type_ = dt::f32)
      : images(images_),
        in_c(32),
        out_c(layer == 3 ? 64 : 32),
        size(layer == 3 ? 48 : 99),
        pooled((size - 2) / 2),
        type(type_) {
    const tag blocks = machine_blocks();
    in = *histocnn::cpu::lane_layout(Mem::desc({images, in_c, size, size}, type, blocks));
    out = *histocnn::cpu::lane_layout(Mem::desc({images, out_c, pooled, pooled}, type, blocks));
    d_pooled = map(out_count(), [](size_t i) { return float(i % 89) * 0.01f - 0.4f; });
    argmax.resize(out_count());
    for (size_t i = 0; i < out_count(); ++i) {
      const bool on = int64_t((i * 2654435761u) % 7) < positive;
      argmax[i] = uint8_t((i * 40503u) % 4) | (on ? 0 : histocnn::kArgmaxNotPositive);
    }
  }
  // `count` values value(i) of `type` (bf16: packed in the first half).
  template <typename F>
  histocnn::HostFloats map(size_t count, F value) const {
    histocnn::HostFloats m(count);
    auto* bf16 = reinterpret_cast<histocnn::Bf16*>(m.data());
    for (size_t i = 0; i < count; ++i) {
      if (type == dt::bf16)
        bf16[i] = histocnn::to_bf16(value(i));
      else
        m[i] = value(i);
    }
    return m;
  }
};

// The pooled kernels' cases: SlicesAndBatches' in fp32 (precision 0) and bf16 (1).
void SlicesAndBatchesBothPrecisions(benchmark::internal::Benchmark* b) {
  b->ArgNames({"images", "layer", "precision"});
  for (const auto& args : {std::vector<int64_t>{2, 2}, {50, 2}, {5, 3}, {50, 3}})
    for (int64_t precision : {0, 1}) b->Args({args[0], args[1], precision});
}
dt precision_of(int64_t arg) {
  return arg ? dt::bf16 : dt::f32;
}

// The step's slices at two threads (conv2: 2 images, conv3: 5) and the whole
// batch of 50, for each layer.
void SlicesAndBatches(benchmark::internal::Benchmark* b) {
  b->ArgNames({"images", "layer"});
  for (const auto& args : {std::vector<int64_t>{2, 2}, {50, 2}, {5, 3}, {50, 3}}) b->Args(args);
}

// range(0): images; range(1): 2 or 3 (the layer); range(2): the precision.
void BM_PooledWeightGradient(benchmark::State& state) {
  const PooledLayer l(int(state.range(0)), int(state.range(1)), 4,
                      precision_of(state.range(2)));  // ~4/7 positive
  const histocnn::HostFloats src =
      l.map(l.in_count(), [](size_t i) { return float(i % 97) * 0.01f; });
  std::vector<float> dw(size_t(l.out_c) * l.in_c * 9), db(static_cast<size_t>(l.out_c));
  histocnn::HostFloats scratch;  // grown by the first call
  for (auto _ : state)
    histocnn::cpu::pooled_weight_gradient(l.type, src.data(), l.in, l.d_pooled.data(),
                                          l.argmax.data(), l.out, l.conv(), dw.data(), db.data(),
                                          false, scratch);
  state.counters["FLOP_per_second"] =
      benchmark::Counter(l.direct_flop(), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(histocnn::cpu::pooled_wgrad_isa(l.in, l.out, l.conv()));
}
BENCHMARK(BM_PooledWeightGradient)
    ->Apply(SlicesAndBatchesBothPrecisions)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// range(0): images; range(1): 2 or 3 (the layer); range(2): sevenths
// positive; range(3): the precision (bf16 sums in an fp32 map, as the step).
void BM_PooledDataGradient(benchmark::State& state) {
  const PooledLayer l(int(state.range(0)), int(state.range(1)), state.range(2),
                      precision_of(state.range(3)));
  const bool bf16 = l.type == dt::bf16;
  histocnn::HostFloats d_src(l.in_count()), arranged(size_t(l.out_c) * l.in_c * 9),
      sums;  // bf16's band buffers, grown by the first call
  std::vector<float> w(arranged.size());
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 61) * 0.01f - 0.3f;
  histocnn::cpu::arrange_dgrad_weights(w.data(), l.conv(), l.in, bf16, arranged.data());
  for (auto _ : state)
    histocnn::cpu::pooled_data_gradient(l.type, l.d_pooled.data(), l.argmax.data(), l.out,
                                        arranged.data(), l.conv(), d_src.data(), l.in, sums);
  state.counters["FLOP_per_second"] =
      benchmark::Counter(l.direct_flop(), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(histocnn::cpu::pooled_dgrad_isa(l.in, l.out, l.conv()));
}
BENCHMARK(BM_PooledDataGradient)
    ->ArgNames({"images", "layer", "positive", "precision"})
    ->Args({2, 2, 4, 0})
    ->Args({2, 2, 4, 1})
    ->Args({2, 2, 2, 0})
    ->Args({2, 2, 0, 0})
    ->Args({8, 2, 4, 0})
    ->Args({8, 2, 4, 1})
    ->Args({5, 3, 4, 0})
    ->Args({5, 3, 4, 1})
    ->Args({5, 3, 2, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// range(0): images; range(1): 2 or 3 (the layer); range(2): the precision.
void BM_WinogradPoolForward(benchmark::State& state) {
  const PooledLayer l(int(state.range(0)), int(state.range(1)), 4, precision_of(state.range(2)));
  if (!histocnn::cpu::winograd_pool_available()) return state.SkipWithError("no AVX2 or AVX-512");
  const histocnn::HostFloats src =
      l.map(l.in_count(), [](size_t i) { return float(i % 97) * 0.01f - 0.4f; });
  histocnn::HostFloats u(histocnn::cpu::winograd_weights_floats(l.conv())), pooled(l.out_count()),
      scratch;
  std::vector<float> w(size_t(l.out_c) * l.in_c * 9), bias(size_t(l.out_c), 0.01f);
  for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 61) * 0.01f - 0.3f;
  histocnn::cpu::winograd_transform_weights(w.data(), l.conv(), u.data());
  std::vector<uint8_t> argmax(pooled.size());
  for (auto _ : state)
    histocnn::cpu::winograd_pool_forward(l.type, src.data(), l.in, u.data(), bias.data(),
                                         pooled.data(), argmax.data(), l.out, l.conv(), scratch);
  state.counters["FLOP_per_second"] =
      benchmark::Counter(l.direct_flop(), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_WinogradPoolForward)
    ->Apply(SlicesAndBatchesBothPrecisions)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Our pool over the conv output of `images` images (what the step runs
// after oneDNN's forward). range(0): images; range(1): the layer.
void BM_MaxPoolForward(benchmark::State& state) {
  const PooledLayer l(int(state.range(0)), int(state.range(1)), 4);
  const int conv = l.size - 2;
  const auto act = *histocnn::cpu::lane_layout(
      Mem::desc({l.images, l.out_c, conv, conv}, dt::f32, machine_blocks()));
  histocnn::HostFloats x(size_t(l.images) * l.out_c * conv * conv), pooled(l.out_count());
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 97) * 0.01f;
  std::vector<uint8_t> argmax(pooled.size());
  for (auto _ : state)
    histocnn::cpu::max_pool_forward(x.data(), act, pooled.data(), argmax.data(), l.out, 2);
}
BENCHMARK(BM_MaxPoolForward)->Apply(SlicesAndBatches)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_WinogradWeights(benchmark::State& state) {
  const histocnn::cpu::PooledConv conv{32, int(state.range(0)), 3, 0, 2};
  std::vector<float> w(size_t(conv.out_c) * conv.in_c * 9, 0.1f),
      u(histocnn::cpu::winograd_weights_floats(conv));
  for (auto _ : state) histocnn::cpu::winograd_transform_weights(w.data(), conv, u.data());
}
BENCHMARK(BM_WinogradWeights)->ArgName("out_c")->Arg(32)->Arg(64)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
