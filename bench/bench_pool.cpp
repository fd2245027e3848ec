// Max pooling alone: our kernels (backends/cpu/pool_kernels.h) against
// oneDNN's pooling primitives (plus the ReLU backward the step ran before
// oneDNN's pool backward), on conv1's output at 200 px: 2x2 windows over
// 32 x 198 x 198 maps, in the layouts the CPU step uses (fp32 nChw16c, bf16
// nhwc). "images" is how many maps one call pools: 1 stays in cache (what a
// micro-batched step sees), 50 does not (a whole batch). Reports bytes moved
// per second (reads + writes of one call) beside the time.
//
//   build/bench/bench_pool --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line)
#include <benchmark/benchmark.h>

#include <cstring>
#include <dnnl.hpp>
#include <vector>

#include "backends/cpu/cpu_step.h"
#include "backends/cpu/pool_kernels.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

struct Maps {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  Mem::desc in_md, out_md;
  Mem x, y, dy, dx;
  std::vector<uint8_t> argmax;
  dnnl::pooling_forward::primitive_desc fwd_pd;
  dnnl::pooling_backward::primitive_desc bwd_pd;
  dnnl::eltwise_backward::primitive_desc relu_pd;
  Mem workspace;

  Maps(dt type, int images) {
    const tag layout = type == dt::f32 ? tag::nChw16c : tag::nhwc;
    in_md = Mem::desc({images, 32, 198, 198}, type, layout);
    out_md = Mem::desc({images, 32, 99, 99}, type, layout);
    x = Mem(in_md, engine);
    dx = Mem(in_md, engine);
    y = Mem(out_md, engine);
    dy = Mem(out_md, engine);
    for (const Mem* m : {&x, &dx, &y, &dy})
      std::memset(m->get_data_handle(), 0x3f, m->get_desc().get_size());  // ~0.75, > 0
    argmax.resize(out_md.get_size());
    const Mem::dims k = {2, 2}, zero = {0, 0};
    fwd_pd = dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max,
                                    in_md, out_md, k, k, zero, zero),
        engine);
    bwd_pd = dnnl::pooling_backward::primitive_desc(
        dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, in_md, out_md, k, k, zero, zero),
        engine, fwd_pd);
    const auto relu_fwd = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                    dnnl::algorithm::eltwise_relu_use_dst_for_bwd, out_md, 0.f),
        engine);
    relu_pd = dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_relu_use_dst_for_bwd, out_md, out_md,
                                     0.f),
        engine, relu_fwd);
    workspace = Mem(fwd_pd.workspace_desc(), engine);
  }
  template <typename T>
  T* at(const Mem& m) const {
    return static_cast<T*>(m.get_data_handle());
  }
};

// Reads + writes of one call, in bytes.
double forward_bytes(const Maps& m) {
  return double(m.in_md.get_size() + m.out_md.get_size() + m.argmax.size());
}
double backward_bytes(const Maps& m) {
  return double(m.out_md.get_size() + m.argmax.size() + m.in_md.get_size());
}

void report(benchmark::State& state, double bytes) {
  state.counters["bytes_per_second"] =
      benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
}

template <typename T>
void ours_forward(benchmark::State& state, dt type) {
  Maps m(type, int(state.range(0)));
  const LaneLayout in = *lane_layout(m.in_md), out = *lane_layout(m.out_md);
  for (auto _ : state)
    max_pool_forward(m.at<const T>(m.x), in, m.at<T>(m.y), m.argmax.data(), out, 2);
  report(state, forward_bytes(m));
}

template <typename T>
void ours_backward(benchmark::State& state, dt type) {
  Maps m(type, int(state.range(0)));
  const LaneLayout in = *lane_layout(m.in_md), out = *lane_layout(m.out_md);
  max_pool_forward(m.at<const T>(m.x), in, m.at<T>(m.y), m.argmax.data(), out, 2);
  for (auto _ : state)
    max_pool_relu_backward(m.at<const T>(m.dy), m.argmax.data(), out, m.at<T>(m.dx), in, 2);
  report(state, backward_bytes(m));
}

void onednn_forward(benchmark::State& state, dt type) {
  Maps m(type, int(state.range(0)));
  auto pool = dnnl::pooling_forward(m.fwd_pd);
  for (auto _ : state) {
    pool.execute(m.stream,
                 {{DNNL_ARG_SRC, m.x}, {DNNL_ARG_DST, m.y}, {DNNL_ARG_WORKSPACE, m.workspace}});
    m.stream.wait();
  }
  report(state, forward_bytes(m));
}

// What the step ran before our kernels: ReLU backward on the pooled map (in
// place), then the pool's backward.
void onednn_backward(benchmark::State& state, dt type) {
  Maps m(type, int(state.range(0)));
  auto pool = dnnl::pooling_forward(m.fwd_pd);
  pool.execute(m.stream,
               {{DNNL_ARG_SRC, m.x}, {DNNL_ARG_DST, m.y}, {DNNL_ARG_WORKSPACE, m.workspace}});
  auto relu = dnnl::eltwise_backward(m.relu_pd);
  auto back = dnnl::pooling_backward(m.bwd_pd);
  for (auto _ : state) {
    relu.execute(m.stream,
                 {{DNNL_ARG_DST, m.y}, {DNNL_ARG_DIFF_DST, m.dy}, {DNNL_ARG_DIFF_SRC, m.dy}});
    back.execute(
        m.stream,
        {{DNNL_ARG_DIFF_DST, m.dy}, {DNNL_ARG_DIFF_SRC, m.dx}, {DNNL_ARG_WORKSPACE, m.workspace}});
    m.stream.wait();
  }
  report(state, backward_bytes(m) + 3.0 * double(m.out_md.get_size()));  // + the ReLU pass
}

void ours_forward_f32(benchmark::State& s) {
  ours_forward<float>(s, dt::f32);
}
void ours_backward_f32(benchmark::State& s) {
  ours_backward<float>(s, dt::f32);
}
void onednn_forward_f32(benchmark::State& s) {
  onednn_forward(s, dt::f32);
}
void onednn_backward_f32(benchmark::State& s) {
  onednn_backward(s, dt::f32);
}
// bf16 where the CPU computes it natively (as the step requires).
bool bf16_here(benchmark::State& s) {
  if (cpu_has_bf16()) return true;
  s.SkipWithError("this CPU has neither AVX512-BF16 nor AMX");
  return false;
}
void ours_forward_bf16(benchmark::State& s) {
  if (bf16_here(s)) ours_forward<Bf16>(s, dt::bf16);
}
void ours_backward_bf16(benchmark::State& s) {
  if (bf16_here(s)) ours_backward<Bf16>(s, dt::bf16);
}
void onednn_forward_bf16(benchmark::State& s) {
  if (bf16_here(s)) onednn_forward(s, dt::bf16);
}
void onednn_backward_bf16(benchmark::State& s) {
  if (bf16_here(s)) onednn_backward(s, dt::bf16);
}

#define POOL_BENCH(f) \
  BENCHMARK(f)->ArgName("images")->Arg(1)->Arg(50)->Unit(benchmark::kMillisecond)
POOL_BENCH(ours_forward_f32);
POOL_BENCH(onednn_forward_f32);
POOL_BENCH(ours_backward_f32);
POOL_BENCH(onednn_backward_f32);
POOL_BENCH(ours_forward_bf16);
POOL_BENCH(onednn_forward_bf16);
POOL_BENCH(ours_backward_bf16);
POOL_BENCH(onednn_backward_bf16);

}  // namespace
}  // namespace histocnn::cpu

BENCHMARK_MAIN();
