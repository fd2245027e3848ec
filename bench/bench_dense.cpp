// fc1 of the paper's network at 200 px (33,856 -> 64 features) alone, fp32:
// the CPU step's dense products (backends/cpu/dense_kernels.h: dnnl_sgemm
// called directly) against oneDNN's inner product primitives (what the step
// ran until 2026-12-02), forward (with ReLU), weight gradient (with the bias
// gradient) and data gradient, at batch 10 and 50; and the step's forward and
// fused backward (`ours`: the skinny kernels at batch 10) against the same
// calls on sgemm alone (`sgemm`). Reports the products' multiply-adds x2 per
// second beside the time.
//
//   build/bench/bench_dense --benchmark_min_time=0.2 --benchmark_repetitions=5
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
//   (one command line)
#include <benchmark/benchmark.h>

#include <dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "backends/cpu/dense_kernels.h"

namespace histocnn::cpu {
namespace {

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

constexpr int kIn = 33856, kOut = 64;

enum class Pass { kForward, kWeights, kData, kBackward };

struct Operands {
  int rows;
  std::vector<float> x, w, b, y, dy, dw, db, dx;
  explicit Operands(int n)
      : rows(n),
        x(size_t(n) * kIn, 0.01f),
        w(size_t(kOut) * kIn, 0.02f),
        b(kOut, 0.1f),
        y(size_t(n) * kOut),
        dy(size_t(n) * kOut, 0.1f),
        dw(size_t(kOut) * kIn),
        db(kOut),
        dx(size_t(n) * kIn) {}
};

void ours(benchmark::State& state, Pass pass) {
  Operands o(int(state.range(0)));
  for (auto _ : state) {
    if (pass == Pass::kForward)
      dense_forward(o.rows, kIn, kOut, o.x.data(), o.w.data(), o.b.data(), true, o.y.data());
    else if (pass == Pass::kWeights)
      dense_backward_weights(o.rows, kIn, kOut, o.x.data(), o.dy.data(), o.dw.data(), o.db.data());
    else if (pass == Pass::kData)
      dense_backward_data(o.rows, kIn, kOut, o.dy.data(), o.w.data(), o.dx.data());
    else
      dense_backward(o.rows, kIn, kOut, o.x.data(), o.dy.data(), o.w.data(), o.dw.data(),
                     o.db.data(), o.dx.data());
  }
  const DenseVersions versions = dense_versions(o.rows, kIn);
  state.SetLabel(pass == Pass::kForward    ? versions.forward
                 : pass == Pass::kBackward ? versions.backward
                                           : "sgemm");
  const double products = pass == Pass::kBackward ? 2 : 1;
  state.counters["FLOP_per_second"] = benchmark::Counter(
      2.0 * products * o.rows * kIn * kOut, benchmark::Counter::kIsIterationInvariantRate);
}

// The step's calls with every product on sgemm (cap_dense("portable")):
// against `ours` at batch 10, the skinny kernels' gain alone.
void sgemm(benchmark::State& state, Pass pass) {
  cap_dense("portable");
  ours(state, pass);
  cap_dense("avx512");
}

void onednn(benchmark::State& state, Pass pass) {
  Operands o(int(state.range(0)));
  const int n = o.rows;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  auto src_md = Mem::desc({n, kIn}, dt::f32, tag::nc),
       w_md = Mem::desc({kOut, kIn}, dt::f32, tag::oi);
  auto b_md = Mem::desc({kOut}, dt::f32, tag::x), dst_md = Mem::desc({n, kOut}, dt::f32, tag::nc);
  dnnl::post_ops relu;
  relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(relu);
  const dnnl::inner_product_forward::primitive_desc fwd(
      {dnnl::prop_kind::forward_training, src_md, w_md, b_md, dst_md}, attr, engine);
  Mem src(src_md, engine, o.x.data()), w(w_md, engine, o.w.data()), b(b_md, engine, o.b.data());
  Mem dst(dst_md, engine, o.y.data()), ddst(dst_md, engine, o.dy.data());
  Mem dw(w_md, engine, o.dw.data()), db(b_md, engine, o.db.data()),
      dsrc(src_md, engine, o.dx.data());
  dnnl::primitive p;
  std::unordered_map<int, Mem> args;
  if (pass == Pass::kForward) {
    p = dnnl::inner_product_forward(fwd);
    args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, dst}};
  } else if (pass == Pass::kWeights) {
    p = dnnl::inner_product_backward_weights(dnnl::inner_product_backward_weights::primitive_desc(
        {src_md, w_md, b_md, dst_md}, engine, fwd));
    args = {{DNNL_ARG_SRC, src},
            {DNNL_ARG_DIFF_DST, ddst},
            {DNNL_ARG_DIFF_WEIGHTS, dw},
            {DNNL_ARG_DIFF_BIAS, db}};
  } else {
    p = dnnl::inner_product_backward_data(
        dnnl::inner_product_backward_data::primitive_desc({src_md, w_md, dst_md}, engine, fwd));
    args = {{DNNL_ARG_DIFF_DST, ddst}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, dsrc}};
  }
  for (auto _ : state) {
    p.execute(stream, args);
    stream.wait();
  }
  state.counters["FLOP_per_second"] =
      benchmark::Counter(2.0 * n * kIn * kOut, benchmark::Counter::kIsIterationInvariantRate);
}

void Batches(benchmark::internal::Benchmark* b) {
  b->ArgName("batch")->Arg(10)->Arg(50)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK_CAPTURE(ours, forward, Pass::kForward)->Apply(Batches);
BENCHMARK_CAPTURE(onednn, forward, Pass::kForward)->Apply(Batches);
BENCHMARK_CAPTURE(ours, weights, Pass::kWeights)->Apply(Batches);
BENCHMARK_CAPTURE(onednn, weights, Pass::kWeights)->Apply(Batches);
BENCHMARK_CAPTURE(ours, data, Pass::kData)->Apply(Batches);
BENCHMARK_CAPTURE(onednn, data, Pass::kData)->Apply(Batches);
BENCHMARK_CAPTURE(ours, backward, Pass::kBackward)->Apply(Batches);
BENCHMARK_CAPTURE(sgemm, forward, Pass::kForward)->Apply(Batches);
BENCHMARK_CAPTURE(sgemm, backward, Pass::kBackward)->Apply(Batches);

}  // namespace
}  // namespace histocnn::cpu

BENCHMARK_MAIN();
