// The CPU training step, compiled once per (model, batch shape): the class
// and its blocks. cpu_step_layers.cpp builds the primitives (conv blocks with
// optional batch norm, global pooling, dense layers); cpu_step.cpp plans the
// memory and runs the step.
//
// Layouts: oneDNN picks the activation layouts (blocked nChw16c on AVX-512,
// nChw8c on AVX2);
// every layer is created against its neighbour's exact layout, so activations
// flow without reorders. Weights live in canonical PyTorch layouts in one flat
// vector (so Adam is a single fused loop); each step they are reordered into
// the layouts the primitives asked for, which costs little (the conv weights
// are small; the dense weights stay plain: dense_kernels.h reads them as
// they are).
//
// Per conv block:   x -> conv+ReLU (fused post-op) -> max-pool -> y
//   with BN:        x -> conv (no bias) -> BN -> ReLU (in place) -> max-pool -> y
//                   (our pool kernels take the ReLU of each window's max
//                   instead: one pass over the map fewer)
//                   (training: the batch's statistics, running statistics
//                   updated as PyTorch does; inference: the running ones)
// Backward:         dy *= (y > 0)   [ReLU backward on the pooled map: the pool
//                                    passes gradient only to each window's max,
//                                    and that max is > 0 exactly where ReLU'
//                                    is 1, so this equals ReLU backward on the
//                                    4x larger conv output]
//                   -> pool backward -> [BN backward] -> conv backward weights
//                   (+bias), data
//                   (blocks after the first, without BN, on our pool,
//                   where the AVX-512 or AVX2 versions run: the weights and bias
//                   from the pooled gradient instead, pooled_wgrad_kernels.h,
//                   and the data gradient too, pooled_dgrad_kernels.h: no
//                   pool backward then; otherwise the pool backward feeds
//                   oneDNN's gradients)
// Global average pooling (spec 'gap'): an average pooling over the whole last
// map into plain [N, C], and its backward.
//
// Precision: fp32, or bf16 (--precision bf16, on CPUs with AVX512-BF16 or
// AMX): convolution activations, their gradients and the weights the
// convolutions read are bf16; the master weights, weight gradients, Adam
// state, batch-norm statistics, the dense layers and the loss stay fp32 (the
// flatten/global-pooling reorders convert). oneDNN accumulates in fp32.
//
// Max pooling runs on our own kernels (pool_kernels.h) where the layouts are
// ones they read (all that oneDNN picks for activations here): they record
// the argmax as a byte per pooled element and fuse the ReLU backward into the
// pool's backward scatter, in place of oneDNN's pooling and eltwise
// primitives (the first, in oneDNN 2.6, 3-6x slower).
//
// The first block, when it has few input channels, no batch norm and a
// pool, runs on our fused kernels instead (conv_pool_kernels.h: convolution,
// bias, ReLU and pool in one pass over the fp32 input, whose output never
// leaves the registers; backward straight to the weight gradients), where the
// CPU has AVX-512 or AVX2 and StepOptions::cpu_onednn_conv1 is off.
//
// Micro-batching: a block without batch norm whose full-batch convolution
// output would leave the cache (conv1 at 200 px and batch 50: 251 MB) runs
// its convolution, ReLU and pool — and in backward its ReLU, pool backward and
// convolution backward — over slices of `rows` images at a time, so the
// convolution output of a slice is read back from cache and never exists for
// the whole batch. Only activation layouts whose image index is outermost
// (every oneDNN activation layout but the N-blocked ones) are sliced; the
// slices' weight gradients are summed.
//
// Memory: every activation, gradient and oneDNN scratchpad (user-managed, so
// the library allocates nothing behind our back) is a planned buffer with a
// lifetime in operations; StepMemory places them through the DeviceContext's
// resource — one arena (allocator "plan") or per tensor every step.
#pragma once

#include <omp.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "backends/cpu/adam_kernel.h"
#include "backends/cpu/conv_pool_kernels.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/dense_kernels.h"
#include "backends/cpu/pool_kernels.h"
#include "backends/cpu/pooled_dgrad_kernels.h"
#include "backends/cpu/pooled_wgrad_kernels.h"
#include "core/error.h"
#include "core/float_mode.h"
#include "core/rng.h"
#include "core/stopwatch.h"
#include "memory/host_resource.h"
#include "memory/step_memory.h"
#include "nn/elementwise.h"

namespace histocnn::cpu {

using Mem = dnnl::memory;
using histocnn::Clock;
using histocnn::seconds_since;
using tag = Mem::format_tag;
using dt = Mem::data_type;
// An operation of the step and the memories it touches (for lifetime planning).
struct Op {
  std::function<void()> run;
  std::vector<Mem> uses;
  std::string label;  // layer and direction, for the per-layer profile
};

struct ConvBlock {
  ConvShape s;
  dnnl::convolution_forward::primitive_desc fwd_pd;
  dnnl::convolution_backward_weights::primitive_desc bwd_w_pd;
  dnnl::convolution_backward_data::primitive_desc bwd_d_pd;  // empty for the first block
  dnnl::pooling_forward::primitive_desc pool_pd;
  dnnl::pooling_backward::primitive_desc pool_bwd_pd;
  Mem src, conv_out, pooled, workspace;  // forward
  Mem d_pooled, d_conv_out, d_src;       // backward (d_src: previous block's d_pooled)
  Mem w_canon, w_fwd, w_bwd_d, b;        // weights (b: none with BN)
  Mem dw_canon, dw_bwd, db;              // gradients
  Mem scratch_fwd, scratch_pool, scratch_pool_bwd, scratch_bwd_w, scratch_bwd_d, scratch_relu;
  // Batch norm: act = what the pool reads (bn_out after ReLU, else conv_out),
  // d_act its gradient (else d_conv_out itself).
  dnnl::batch_normalization_forward::primitive_desc bn_fwd_pd, bn_infer_pd;
  dnnl::batch_normalization_backward::primitive_desc bn_bwd_pd;
  dnnl::eltwise_forward::primitive_desc relu_fwd_pd;
  Mem act, d_act, bn_out, mean, variance, gamma, beta, dgamma, dbeta, running_mean, running_var;
  Mem scratch_bn_fwd, scratch_bn_infer, scratch_bn_bwd, scratch_relu_fwd;
  // Micro-batching (see the file comment): the primitives above are compiled
  // for `rows` images and run `slices` times; conv_out, d_conv_out (and
  // d_act) hold one slice; src, pooled, workspace, d_pooled and d_src the
  // whole batch. The *_view memories are slice views re-pointed per slice.
  int rows = 0, slices = 1;
  dnnl::eltwise_backward::primitive_desc relu_bwd_pd;
  Mem dw_part, db_part;  // one slice's weight gradients, summed into dw_bwd/db
  Mem src_view, pooled_view, workspace_view, d_pooled_view, d_src_view;
  // Max pooling by our kernels (pool_kernels.h): `workspace` then holds one
  // argmax byte per pooled element, in the pooled map's layout, flagged where
  // the pooled value is not positive, and backward fuses that ReLU into the
  // scatter without reading the pooled map back. act_lanes and
  // pooled_lanes describe one slice (rows images) or the whole batch.
  bool own_pool = false;
  LaneLayout act_lanes, pooled_lanes;
  // The weight and bias gradients from the pooled gradient
  // (pooled_wgrad_kernels.h), straight into dw_canon and db: no oneDNN
  // weight-gradient primitive runs. src_lanes: the input's layout (one slice);
  // wgrad_scratch: the kernel's partial sums (pooled_wgrad_scratch_floats).
  bool pooled_wgrad = false;
  LaneLayout src_lanes;
  HostFloats wgrad_scratch;
  // The data gradient from the pooled gradient (pooled_dgrad_kernels.h),
  // straight into d_src: no oneDNN data-gradient primitive runs, and with
  // pooled_wgrad no pool backward either. d_src_lanes: d_src's layout (one
  // slice); dgrad_weights: the weights as the kernel reads them, arranged
  // from w_canon each step; dgrad_sums: its fp32 sums in bf16 mode.
  bool pooled_dgrad = false;
  LaneLayout d_src_lanes;
  HostFloats dgrad_weights, dgrad_sums;  // 64-byte aligned: no split AVX-512 loads
  // The first block on our fused kernels (conv_pool_kernels.h, see the file
  // comment): src is the fp32 NCHW input (zero-padded when the block pads),
  // pooled/workspace/d_pooled as for own_pool; no conv_out, d_act or oneDNN
  // primitive runs, and the gradients land in dw_canon and db directly.
  bool fused = false;
  ConvPoolGeometry fused_geometry;
  HostFloats fused_scratch;  // packed weights and per-thread sums (small; aligned)
  // A later block's forward by our Winograd conv+ReLU+pool
  // (winograd_pool_kernels.h, cpu_step_winograd.cpp), over the whole batch
  // in one op: no oneDNN convolution or pool runs forward, and conv_out is
  // dropped from the memory plan (nothing reads it). winograd_in/out: src's
  // and pooled's layouts (whole batch); winograd_weights: the transformed
  // weights, from w_canon each step; winograd_scratch: per-thread tiles.
  bool own_winograd = false;
  LaneLayout winograd_in, winograd_out;
  HostFloats winograd_weights, winograd_scratch;
  bool pooling() const { return s.pool > 1; }
  bool sliced() const { return slices > 1; }
};

// A dense layer: plain fp32 [rows][features] tensors, products by
// dense_kernels.h.
struct DenseBlock {
  DenseShape s;
  Mem src, out, d_src, d_out;  // out: after ReLU; d_out: gradient w.r.t. the block's output
  Mem w, b, dw, db;
  std::vector<float> mask;  // dropout scale per element (0 or 1/(1-p))
};

// A block's convolution and pool as our pooled-map kernels take them.
inline PooledConv pooled_conv(const ConvShape& s) {
  return {s.in_c, s.out_c, s.kernel, s.pad, s.pool};
}

// A plain fp32 tensor's elements.
inline float* floats(const Mem& m) {
  return static_cast<float*>(m.get_data_handle());
}

inline Mem::dims dims4(int n, int c, int h, int w) {
  return {n, c, h, w};
}

// The same layout for `rows` images instead of the descriptor's N, when its
// image index is outermost and dense (image k starts at k * bytes-per-image);
// an empty descriptor otherwise (an N-blocked or padded-N layout).
Mem::desc with_rows(const Mem::desc& md, int rows);
// The same layout and dimensions in another data type (strides count
// elements, so they stay valid).
Mem::desc with_type(const Mem::desc& md, dt type);
// The largest divisor of `batch` whose convolution output fits `budget` bytes
// at `row_bytes` per image (at least 1).
int slice_rows(int batch, size_t row_bytes, size_t budget);
// Whether this CPU runs oneDNN's bf16 kernels natively (AVX512-BF16 or AMX),
// as oneDNN sees it (ONEDNN_MAX_CPU_ISA can lower it).
bool cpu_has_bf16();

// Primitive attributes with a user-managed scratchpad (planned by us), plus
// an optional fused ReLU.
inline dnnl::primitive_attr user_scratchpad(bool relu = false) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  return attr;
}

// Execution arguments plus the scratchpad, when the primitive wants one.
inline std::unordered_map<int, Mem> args(std::unordered_map<int, Mem> a, const Mem& scratch) {
  if (scratch) a.insert({DNNL_ARG_SCRATCHPAD, scratch});
  return a;
}

class CpuTrainingStep final : public TrainingStep {
 public:
  CpuTrainingStep(const NetworkShape& shape, const StepOptions& options)
      : shape_(shape), options_(options), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    require(options.precision == "fp32" || options.precision == "bf16",
            "--precision " + options.precision + ": the CPU backend trains in fp32 or bf16");
    require(options.precision != "bf16" || cpu_has_bf16(),
            "--precision bf16: this CPU has neither AVX512-BF16 nor AMX (oneDNN runs " +
                isa_name() + "); train in fp32");
    act_dt_ = options.precision == "bf16" ? dt::bf16 : dt::f32;
    if (options_.cpu_slice_bytes == StepOptions::kThreadScaledSlices)
      options_.cpu_slice_bytes = cpu_slice_bytes_for(omp_get_max_threads());
    resource_ = options.device.memory ? options.device.memory : &own_resource_;
    params_ = Parameters::zeros(shape_);
    grads_ = Parameters::zeros(shape_);
    m_ = Parameters::zeros(shape_);
    v_ = Parameters::zeros(shape_);
    bn_buffers_ = Buffers::initial(shape_);
    build();
  }

  StepResult train_slice(const float* images, const int32_t* labels, int count,
                         const BatchSlice& slice) override {
    require(count >= 0 && count <= shape_.batch && (count > 0 || slice.global_count > 0),
            "batch of " + std::to_string(count) + " images does not fit the compiled batch of " +
                std::to_string(shape_.batch));
    const FlushDenormals fast(options_.flush_denormals);
    slice_ = slice;
    StepResult r;
    if (count > 0)
      r = run(images, labels, count, /*training=*/true, /*backward=*/true);
    else
      std::fill(grads_.values.begin(), grads_.values.end(), 0.0f);  // no rows here
    slice_ = BatchSlice{};
    if (options_.reduce_gradients)
      options_.reduce_gradients(grads_.values.data(), int64_t(grads_.values.size()), nullptr);
    const auto start = Clock::now();
    ++step_;
    adam_update_simd(options_.adam, step_, static_cast<int64_t>(params_.values.size()),
                     params_.values.data(), grads_.values.data(), m_.values.data(),
                     v_.values.data());
    if (options_.profile_layers) profile_.layers["update"] += seconds_since(start);
    weights_dirty_ = true;
    profile_.update += seconds_since(start);
    profile_.steps++;
    return r;
  }

  void predict(const float* images, int count, float* probabilities) override {
    predict_features(images, count, probabilities, nullptr);
  }
  void predict_features(const float* images, int count, float* probabilities,
                        float* features) override {
    const FlushDenormals fast(options_.flush_denormals);
    run(images, nullptr, count, /*training=*/false, /*backward=*/false, features);
    std::memcpy(probabilities, probs_.data(),
                sizeof(float) * size_t(shape_.classes()) * size_t(count));
  }

  StepResult gradients(const float* images, const int32_t* labels, int count, bool training,
                       Parameters* grads) override {
    const FlushDenormals fast(options_.flush_denormals);
    StepResult r = run(images, labels, count, training, true);
    if (grads) *grads = grads_;
    return r;
  }

  void set_parameters(const Parameters& p) override {
    require(p.values.size() == params_.values.size(), "parameters do not match the model");
    params_.values = p.values;
    weights_dirty_ = true;
  }
  Parameters parameters() const override { return params_; }
  Buffers buffers() const override { return bn_buffers_; }
  void set_buffers(const Buffers& b) override {
    require(b.values.size() == bn_buffers_.values.size(),
            "batch-norm buffers do not match the model");
    std::copy(b.values.begin(), b.values.end(), bn_buffers_.values.begin());  // views stay valid
    bn_buffers_.batches_tracked = b.batches_tracked;
  }
  void set_learning_rate(float learning_rate) override {
    options_.adam.learning_rate = learning_rate;
  }
  void set_optimizer_state(const Parameters& m, const Parameters& v, int64_t step) override {
    require(m.values.size() == m_.values.size() && v.values.size() == v_.values.size(),
            "optimizer state does not match the model");
    m_.values = m.values;
    v_.values = v.values;
    step_ = step;
  }
  void optimizer_state(Parameters* m, Parameters* v, int64_t* step) const override {
    *m = m_;
    *v = v_;
    *step = step_;
  }
  MemoryReport memory() const override {
    MemoryReport r = memory_;
    r.allocator_calls = step_memory_->allocator_calls();
    return r;
  }
  StepProfile profile() const override { return profile_; }
  const NetworkShape& shape() const override { return shape_; }
  nlohmann::json details() const override;
  static std::string isa_name();

 private:
  // A planned activation buffer: no memory yet; plan_buffers() places it in the arena.
  Mem make(const Mem::desc& md, const std::string& name) {
    Mem m(md, engine_, DNNL_MEMORY_NONE);
    buffer_of_[m.get()] = buffers_.size();
    buffers_.push_back({name, md.get_size(), {m}});
    return m;
  }
  // A buffer made before a later choice spared it (a block's conv output
  // where our Winograd kernel writes the pooled map straight): the plan
  // leaves it out and no operation may use it (plan_buffers checks).
  void drop(const Mem& m) { buffers_.at(buffer_of_.at(m.get())).dropped = true; }
  // Another view (descriptor) of a planned buffer.
  Mem alias(const Mem::desc& md, const Mem& of) {
    Mem m(md, engine_, DNNL_MEMORY_NONE);
    const size_t id = buffer_of_.at(of.get());
    buffer_of_[m.get()] = id;
    buffers_[id].handles.push_back(m);
    return m;
  }
  // Weights in a primitive's layout: they outlive a step, so they are not planned.
  Mem persistent(const Mem::desc& md) {
    memory_.parameter_bytes += int64_t(md.get_size());
    return Mem(md, engine_);
  }
  Mem view(const Mem::desc& md, float* data) { return Mem(md, engine_, data); }
  // An activation descriptor in the step's precision, layout chosen by oneDNN.
  Mem::desc act_any(const Mem::dims& d) const { return Mem::desc(d, act_dt_, tag::any); }
  // ReLU backward on a pooled map of this layout, in place (see the file comment).
  dnnl::eltwise_backward::primitive_desc relu_backward_pd(const Mem::desc& pooled_md) const {
    const auto forward = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                    dnnl::algorithm::eltwise_relu_use_dst_for_bwd, pooled_md, 0.f),
        engine_);
    return dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_relu_use_dst_for_bwd, pooled_md,
                                     pooled_md, 0.f),
        user_scratchpad(), engine_, forward);
  }
  // The primitive's scratchpad as a planned buffer (empty when it needs none).
  template <typename PrimitiveDesc>
  Mem scratch(const PrimitiveDesc& pd, const std::string& name) {
    const Mem::desc md = pd.scratchpad_desc();
    return md.get_size() ? make(md, name + ".scratchpad") : Mem();
  }
  void add(std::vector<Op>& ops, std::vector<Mem> uses, std::function<void()> run) {
    ops.push_back({std::move(run), std::move(uses), label_});
  }
  // Runs an operation, timed into the per-layer profile when asked.
  void execute(Op& op) {
    if (!options_.profile_layers) return op.run();
    const auto t = Clock::now();
    op.run();
    profile_.layers[op.label] += seconds_since(t);
  }
  void reorder_if_needed(const Mem& from, const Mem& to, std::vector<Op>& ops) {
    if (from.get_desc() == to.get_desc() && from.get() == to.get()) return;
    const auto pd = dnnl::reorder::primitive_desc(from, to, user_scratchpad());
    auto r = dnnl::reorder(pd);
    Mem pad = &ops == &weight_ops_ ? Mem() : scratch(pd, "reorder");
    require(&ops != &weight_ops_ || !pd.scratchpad_desc().get_size(),
            "oneDNN: a weight reorder asks for a scratchpad (unsupported)");
    add(ops, {from, to, pad}, [this, r, src = from, dst = to, pad]() mutable {
      r.execute(stream_, args({{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}}, pad));
    });
  }
  void plan_buffers();

  // The step's operations and buffers (cpu_step_layers.cpp): blocks,
  // flatten (or global average), dense layers; then backward in reverse.
  void build();
  dnnl::pooling_forward::primitive_desc build_flatten(const Mem& src);
  void add_flatten_backward(const dnnl::pooling_forward::primitive_desc& gap_pd);
  void build_dense(size_t i, const Mem& src);
  void add_dense_backward(size_t k);
  // A convolution block on oneDNN (cpu_step_conv.cpp), built in this order:
  // slicing and primitives, parameters, batch norm, pool buffers, data
  // gradient; then its forward ops. add_conv_backward adds block k's
  // backward ops (any kind of block).
  void build_conv(size_t i, const Mem& src, std::vector<Op>& weight_ops);
  void build_conv_slicing(ConvBlock& c, size_t i, const Mem& src_in);
  // The primitive descriptors of block c for `mb` images (its src_in: the
  // previous block's pooled map, or the input for the first block).
  void build_conv_primitives(ConvBlock& c, const Mem::desc& src_md, int mb);
  void bind_conv_parameters(ConvBlock& c, size_t i);
  void build_batch_norm(ConvBlock& c, size_t i);
  void make_pool_buffers(ConvBlock& c, size_t i);
  void make_activation_gradient(ConvBlock& c, size_t i);
  void build_backward_data(ConvBlock& c, size_t i);
  void add_conv_forward(ConvBlock& cb, size_t i);
  void add_batch_norm_forward(ConvBlock& cb, size_t i);
  void add_conv_backward(size_t k);
  void add_pool_relu_backward(ConvBlock& c, size_t k);
  void add_batch_norm_backward(ConvBlock& c);
  // A slice descriptor widened to the whole batch (unchanged when not sliced).
  Mem::desc whole_batch(const ConvBlock& c, const Mem::desc& md) const;
  // Micro-batched blocks (cpu_step_sliced.cpp): slice views and gradient
  // buffers; the forward op (conv + pool per slice) and the backward op
  // (ReLU, pool backward, conv backward weights and data per slice).
  void prepare_slices(ConvBlock& c, const std::string& tag);
  void add_sliced_forward(ConvBlock& cb);
  void add_sliced_backward(ConvBlock& cb, size_t k);
  // Our max-pool kernels on block c's maps (slice views or whole tensors):
  // whether they can pool c (and its lane layouts, filled in), forward, and
  // backward with the ReLU on the pooled map.
  bool own_pooling(ConvBlock& c) const;
  // Whether the block's convolutions ask oneDNN for Winograd first (all three
  // directions alike): the switch and winograd_pays.
  bool winograd(const ConvShape& s) const { return options_.cpu_winograd && winograd_pays(s); }
  bool winograd_weights(const ConvShape& s) const {
    return winograd(s) && options_.cpu_winograd_weights;
  }
  void pool_forward(const ConvBlock& c, const Mem& act, const Mem& pooled, const Mem& argmax);
  void pool_backward(const ConvBlock& c, const Mem& d_pooled, const Mem& argmax, const Mem& d_act);
  // Whether block i takes its weight gradients from the pooled gradient
  // (after own_pooling, which knows the pooled map's lanes; fills in
  // c.src_lanes), and that op's work on a slice's views or the whole
  // tensors (`accumulate`: a later slice).
  bool pooled_weight_gradients(ConvBlock& c, size_t i) const;
  void pooled_weight_gradient_of(ConvBlock& c, const Mem& src, const Mem& d_pooled,
                                 const Mem& argmax, bool accumulate);
  // Likewise for the data gradient (block i > 0; fills in c.d_src_lanes
  // from d_src's descriptor, one slice's), and its op into d_src.
  bool pooled_data_gradients(ConvBlock& c, size_t i, const Mem::desc& d_src) const;
  void pooled_data_gradient_of(ConvBlock& c, const Mem& d_pooled, const Mem& argmax,
                               const Mem& d_src);
  // Whether the block's backward needs the conv output's gradient at all.
  static bool needs_pool_backward(const ConvBlock& c) {
    return !(c.pooled_wgrad && c.pooled_dgrad);
  }
  // The first block on the fused kernels (cpu_step_fused.cpp): whether it
  // can (then built, with its forward ops), and its backward op.
  bool build_fused_conv(const ConvShape& s);
  void add_fused_backward(ConvBlock& c);
  // A later block's forward on our Winograd kernel (cpu_step_winograd.cpp):
  // whether it can (after make_pool_buffers; then its layouts and buffers
  // are set), and its weight transform and forward ops.
  bool own_winograd_forward(ConvBlock& c, size_t i);
  void add_winograd_forward(ConvBlock& cb, std::vector<Op>& weight_ops);
  void add_relu_forward(ConvBlock& c);
  void add_relu_backward(ConvBlock& c, size_t k);
  // Refuses a batch the step cannot take (size; batch norm's full batches).
  void check_batch(int count, bool training, bool backward) const;
  // features: when not null, the last dense layer's input rows [0, count)
  // are copied there after the forward pass (before its memory is released).
  StepResult run(const float* images, const int32_t* labels, int count, bool training,
                 bool backward, float* features = nullptr);
  void copy_input(const float* images, int count);
  StepResult loss_and_gradient(const int32_t* labels, int count, bool backward);

  NetworkShape shape_;
  StepOptions options_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  dt act_dt_ = dt::f32;  // convolution activations and their gradients
  Parameters params_, grads_, m_, v_;
  int64_t step_ = 0;
  bool weights_dirty_ = true;
  bool training_ = true;

  Mem input_user_, input_;
  std::vector<ConvBlock> convs_;
  std::vector<DenseBlock> denses_;
  Mem flat_nchw_, d_flat_nchw_;
  Mem gap_out_, d_gap_out_;      // bf16: the global average before/after its fp32 conversion
  std::string label_ = "input";  // the layer whose operations are being built
  Buffers bn_buffers_;  // running statistics, viewed by the BN primitives (never reallocated)
  std::vector<float> probs_;
  std::vector<Op> weight_ops_, forward_ops_, backward_ops_, grad_ops_;
  MemoryReport memory_;
  StepProfile profile_;
  struct PlannedBuffer {
    std::string name;
    size_t bytes;
    std::vector<Mem> handles;  // every descriptor viewing this buffer
    bool dropped = false;      // not planned: see drop()
  };
  std::vector<PlannedBuffer> buffers_;
  std::unordered_map<dnnl_memory_t, size_t> buffer_of_;
  HostResource own_resource_;  // when the trainer hands none
  MemoryResource* resource_ = nullptr;
  std::unique_ptr<StepMemory> step_memory_;
  int loss_op_ = 0, op_count_ = 0;
  BatchSlice slice_;  // of the train_slice call in progress
};

}  // namespace histocnn::cpu
