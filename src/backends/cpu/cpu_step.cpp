// The CPU training step, compiled once per (model, batch shape).
//
// Layouts: oneDNN picks the activation layouts (blocked nChw16c on AVX-512);
// every layer is created against its neighbour's exact layout, so activations
// flow without reorders. Weights live in canonical PyTorch layouts in one flat
// vector (so Adam is a single fused loop); each step they are reordered into
// the layouts the primitives asked for, which costs little (the conv weights
// are small; the dense weights stay plain).
//
// Per conv block:   x -> conv+ReLU (fused post-op) -> max-pool -> y
//   with BN:        x -> conv (no bias) -> BN -> ReLU (in place) -> max-pool -> y
//                   (training: the batch's statistics, running statistics
//                   updated as PyTorch does; inference: the running ones)
// Backward:         dy *= (y > 0)   [ReLU backward on the pooled map: the pool
//                                    passes gradient only to each window's max,
//                                    and that max is > 0 exactly where ReLU'
//                                    is 1, so this equals ReLU backward on the
//                                    4x larger conv output]
//                   -> pool backward -> [BN backward] -> conv backward weights
//                   (+bias), data
// Global average pooling (spec 'gap'): an average pooling over the whole last
// map into plain [N, C], and its backward.
//
// Memory: every activation, gradient and oneDNN scratchpad (user-managed, so
// the library allocates nothing behind our back) is a planned buffer with a
// lifetime in operations; StepMemory places them through the DeviceContext's
// resource — one arena (allocator "plan") or per tensor every step.
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <sstream>
#include <unordered_map>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "memory/host_resource.h"
#include "memory/step_memory.h"
#include "nn/elementwise.h"

namespace histocnn {
namespace {

using Mem = dnnl::memory;
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
using tag = Mem::format_tag;
using dt = Mem::data_type;
// An operation of the step and the memories it touches (for lifetime planning).
struct Op {
  std::function<void()> run;
  std::vector<Mem> uses;
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
  bool pooling() const { return s.pool > 1; }
};

struct DenseBlock {
  DenseShape s;
  dnnl::inner_product_forward::primitive_desc fwd_pd;
  dnnl::inner_product_backward_data::primitive_desc bwd_d_pd;
  dnnl::inner_product_backward_weights::primitive_desc bwd_w_pd;
  Mem src, out, d_src, d_out;  // out: after ReLU; d_out: gradient w.r.t. the block's output
  Mem w, b, dw, db;
  std::vector<float> mask;  // dropout scale per element (0 or 1/(1-p))
  Mem scratch_fwd, scratch_bwd_d, scratch_bwd_w;
};

Mem::dims dims4(int n, int c, int h, int w) {
  return {n, c, h, w};
}

// Primitive attributes with a user-managed scratchpad (planned by us), plus
// an optional fused ReLU.
dnnl::primitive_attr user_scratchpad(bool relu = false) {
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
std::unordered_map<int, Mem> args(std::unordered_map<int, Mem> a, const Mem& scratch) {
  if (scratch) a.insert({DNNL_ARG_SCRATCHPAD, scratch});
  return a;
}

class CpuTrainingStep final : public TrainingStep {
 public:
  CpuTrainingStep(const NetworkShape& shape, const StepOptions& options)
      : shape_(shape), options_(options), engine_(dnnl::engine::kind::cpu, 0), stream_(engine_) {
    require(options.precision == "fp32",
            "--precision " + options.precision + ": the CPU backend trains in fp32 only");
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
    adam_update(options_.adam, step_, static_cast<int64_t>(params_.values.size()),
                params_.values.data(), grads_.values.data(), m_.values.data(), v_.values.data());
    weights_dirty_ = true;
    profile_.update += seconds_since(start);
    profile_.steps++;
    return r;
  }

  void predict(const float* images, int count, float* probabilities) override {
    run(images, nullptr, count, /*training=*/false, /*backward=*/false);
    std::memcpy(probabilities, probs_.data(), sizeof(float) * 2 * count);
  }

  StepResult gradients(const float* images, const int32_t* labels, int count, bool training,
                       Parameters* grads) override {
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

 private:
  // A planned activation buffer: no memory yet; plan_buffers() places it in the arena.
  Mem make(const Mem::desc& md, const std::string& name) {
    Mem m(md, engine_, DNNL_MEMORY_NONE);
    buffer_of_[m.get()] = buffers_.size();
    buffers_.push_back({name, md.get_size(), {m}});
    return m;
  }
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
  // The primitive's scratchpad as a planned buffer (empty when it needs none).
  template <typename PrimitiveDesc>
  Mem scratch(const PrimitiveDesc& pd, const std::string& name) {
    const Mem::desc md = pd.scratchpad_desc();
    return md.get_size() ? make(md, name + ".scratchpad") : Mem();
  }
  void add(std::vector<Op>& ops, std::vector<Mem> uses, std::function<void()> run) {
    ops.push_back({std::move(run), std::move(uses)});
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

  void build();
  void build_conv(size_t i, const Mem& src, std::vector<Op>& weight_ops);
  void build_dense(size_t i, const Mem& src);
  StepResult run(const float* images, const int32_t* labels, int count, bool training,
                 bool backward);
  StepResult loss_and_gradient(const int32_t* labels, int count, bool backward);

  NetworkShape shape_;
  StepOptions options_;
  dnnl::engine engine_;
  dnnl::stream stream_;
  Parameters params_, grads_, m_, v_;
  int64_t step_ = 0;
  bool weights_dirty_ = true;
  bool training_ = true;

  Mem input_user_, input_;
  std::vector<ConvBlock> convs_;
  std::vector<DenseBlock> denses_;
  Mem flat_nchw_, d_flat_nchw_;
  Buffers bn_buffers_;  // running statistics, viewed by the BN primitives (never reallocated)
  std::vector<float> probs_;
  std::vector<Op> weight_ops_, forward_ops_, backward_ops_, grad_ops_;
  MemoryReport memory_;
  StepProfile profile_;
  struct PlannedBuffer {
    std::string name;
    size_t bytes;
    std::vector<Mem> handles;  // every descriptor viewing this buffer
  };
  std::vector<PlannedBuffer> buffers_;
  std::unordered_map<dnnl_memory_t, size_t> buffer_of_;
  HostResource own_resource_;  // when the trainer hands none
  MemoryResource* resource_ = nullptr;
  std::unique_ptr<StepMemory> step_memory_;
  int loss_op_ = 0, op_count_ = 0;
  BatchSlice slice_;  // of the train_slice call in progress
};

void CpuTrainingStep::build() {
  const auto& s = shape_;
  auto user_md = Mem::desc(dims4(s.batch, s.channels, s.height, s.width), dt::f32, tag::nchw);
  input_user_ = make(user_md, "input");
  // Blocks are captured by reference in the op lists: no reallocation allowed.
  convs_.reserve(s.convs.size());
  denses_.reserve(s.denses.size());

  Mem src = input_user_;
  for (size_t i = 0; i < s.convs.size(); ++i) {
    build_conv(i, src, weight_ops_);
    src = convs_[i].pooled;
  }
  // Flatten: last pooled map -> plain NCHW, seen as [N, C*H*W] by the dense
  // layers; or its global average, [N, C, 1, 1] seen as [N, C].
  const auto& last = s.convs.back();
  const bool gap = s.global_pool;
  auto nchw_md = Mem::desc(dims4(s.batch, last.out_c, gap ? 1 : last.out_h, gap ? 1 : last.out_w),
                           dt::f32, tag::nchw);
  flat_nchw_ = make(nchw_md, gap ? "gap" : "flatten");
  d_flat_nchw_ = make(nchw_md, gap ? "d_gap" : "d_flatten");
  dnnl::pooling_forward::primitive_desc gap_pd;
  if (gap) {
    const Mem::dims window = {last.out_h, last.out_w}, zero = {0, 0};
    gap_pd = dnnl::pooling_forward::primitive_desc(
        dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training,
                                    dnnl::algorithm::pooling_avg_exclude_padding, src.get_desc(),
                                    nchw_md, window, window, zero, zero),
        user_scratchpad(), engine_);
    Mem pad = scratch(gap_pd, "gap");
    auto pool = dnnl::pooling_forward(gap_pd);
    add(forward_ops_, {src, flat_nchw_, pad}, [this, pool, src, pad]() {
      pool.execute(stream_, args({{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, flat_nchw_}}, pad));
    });
  } else {
    reorder_if_needed(src, flat_nchw_, forward_ops_);
  }
  auto flat_md = Mem::desc({s.batch, int64_t(s.denses.front().in)}, dt::f32, tag::nc);
  Mem flat = alias(flat_md, flat_nchw_);
  for (size_t i = 0; i < s.denses.size(); ++i) {
    build_dense(i, i == 0 ? flat : denses_[i - 1].out);
  }
  probs_.assign(size_t(s.batch) * 2, 0.0f);

  // Backward of the dense stack (reverse), then back into the conv stack.
  for (size_t k = denses_.size(); k-- > 0;) {
    DenseBlock& d = denses_[k];
    // Gradient w.r.t. pre-activation: d_out (already holds dL/d(out) with the
    // dropout mask folded in by the block above) times ReLU'.
    if (d.s.relu) {
      add(backward_ops_, {d.d_out, d.out}, [&d, this]() {
        float* g = static_cast<float*>(d.d_out.get_data_handle());
        const float* y = static_cast<const float*>(d.out.get_data_handle());
        const int64_t n = int64_t(shape_.batch) * d.s.out;
        const bool drop = training_ && d.s.dropout_after > 0;
        for (int64_t j = 0; j < n; ++j)
          g[j] = elementwise::relu_dropout_grad(y[j], g[j], drop ? d.mask[j] : 1.0f);
      });
    }
    auto bw = dnnl::inner_product_backward_weights(d.bwd_w_pd);
    add(backward_ops_, {d.src, d.d_out, d.scratch_bwd_w}, [&d, bw, this]() {
      bw.execute(stream_, args({{DNNL_ARG_SRC, d.src},
                                {DNNL_ARG_DIFF_DST, d.d_out},
                                {DNNL_ARG_DIFF_WEIGHTS, d.dw},
                                {DNNL_ARG_DIFF_BIAS, d.db}},
                               d.scratch_bwd_w));
    });
    auto bd = dnnl::inner_product_backward_data(d.bwd_d_pd);
    add(backward_ops_, {d.d_out, d.d_src, d.scratch_bwd_d}, [&d, bd, this]() {
      bd.execute(stream_, args({{DNNL_ARG_DIFF_DST, d.d_out},
                                {DNNL_ARG_WEIGHTS, d.w},
                                {DNNL_ARG_DIFF_SRC, d.d_src}},
                               d.scratch_bwd_d));
    });
  }
  if (gap) {
    const Mem::dims window = {last.out_h, last.out_w}, zero = {0, 0};
    const auto gap_bwd_pd = dnnl::pooling_backward::primitive_desc(
        dnnl::pooling_backward::desc(dnnl::algorithm::pooling_avg_exclude_padding,
                                     convs_.back().d_pooled.get_desc(), nchw_md, window, window,
                                     zero, zero),
        user_scratchpad(), engine_, gap_pd);
    Mem pad = scratch(gap_bwd_pd, "gap_bwd");
    auto pool_bwd = dnnl::pooling_backward(gap_bwd_pd);
    ConvBlock& lc = convs_.back();
    add(backward_ops_, {d_flat_nchw_, lc.d_pooled, pad}, [this, pool_bwd, &lc, pad]() {
      pool_bwd.execute(
          stream_,
          args({{DNNL_ARG_DIFF_DST, d_flat_nchw_}, {DNNL_ARG_DIFF_SRC, lc.d_pooled}}, pad));
    });
  } else {
    reorder_if_needed(d_flat_nchw_, convs_.back().d_pooled, backward_ops_);
  }
  for (size_t k = convs_.size(); k-- > 0;) {
    ConvBlock& c = convs_[k];
    // ReLU backward on the pooled map (see the file comment).
    auto relu_fwd = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                    dnnl::algorithm::eltwise_relu_use_dst_for_bwd,
                                    c.pooled.get_desc(), 0.f),
        engine_);
    const auto relu_bwd_pd = dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_relu_use_dst_for_bwd,
                                     c.d_pooled.get_desc(), c.pooled.get_desc(), 0.f),
        user_scratchpad(), engine_, relu_fwd);
    auto relu_bwd = dnnl::eltwise_backward(relu_bwd_pd);
    c.scratch_relu = scratch(relu_bwd_pd, "conv" + std::to_string(k + 1) + ".relu_bwd");
    add(backward_ops_, {c.pooled, c.d_pooled, c.scratch_relu}, [&c, relu_bwd, this]() {
      relu_bwd.execute(stream_, args({{DNNL_ARG_DST, c.pooled},
                                      {DNNL_ARG_DIFF_DST, c.d_pooled},
                                      {DNNL_ARG_DIFF_SRC, c.d_pooled}},
                                     c.scratch_relu));
    });
    if (c.pooling()) {
      auto pb = dnnl::pooling_backward(c.pool_bwd_pd);
      add(backward_ops_, {c.d_pooled, c.d_act, c.workspace, c.scratch_pool_bwd}, [&c, pb, this]() {
        pb.execute(stream_, args({{DNNL_ARG_DIFF_DST, c.d_pooled},
                                  {DNNL_ARG_DIFF_SRC, c.d_act},
                                  {DNNL_ARG_WORKSPACE, c.workspace}},
                                 c.scratch_pool_bwd));
      });
    }
    if (c.s.batch_norm) {
      auto bn_bwd = dnnl::batch_normalization_backward(c.bn_bwd_pd);
      add(backward_ops_, {c.conv_out, c.d_act, c.d_conv_out, c.scratch_bn_bwd},
          [&c, bn_bwd, this]() {
            bn_bwd.execute(stream_, args({{DNNL_ARG_SRC, c.conv_out},
                                          {DNNL_ARG_MEAN, c.mean},
                                          {DNNL_ARG_VARIANCE, c.variance},
                                          {DNNL_ARG_DIFF_DST, c.d_act},
                                          {DNNL_ARG_SCALE, c.gamma},
                                          {DNNL_ARG_SHIFT, c.beta},
                                          {DNNL_ARG_DIFF_SRC, c.d_conv_out},
                                          {DNNL_ARG_DIFF_SCALE, c.dgamma},
                                          {DNNL_ARG_DIFF_SHIFT, c.dbeta}},
                                         c.scratch_bn_bwd));
          });
    }
    auto bw = dnnl::convolution_backward_weights(c.bwd_w_pd);
    add(backward_ops_, {c.src, c.d_conv_out, c.dw_bwd, c.scratch_bwd_w}, [&c, bw, this]() {
      std::unordered_map<int, Mem> a = {{DNNL_ARG_SRC, c.src},
                                        {DNNL_ARG_DIFF_DST, c.d_conv_out},
                                        {DNNL_ARG_DIFF_WEIGHTS, c.dw_bwd}};
      if (c.db) a.insert({DNNL_ARG_DIFF_BIAS, c.db});
      bw.execute(stream_, args(std::move(a), c.scratch_bwd_w));
    });
    reorder_if_needed(c.dw_bwd, c.dw_canon, grad_ops_);
    if (k > 0) {
      auto bd = dnnl::convolution_backward_data(c.bwd_d_pd);
      add(backward_ops_, {c.d_conv_out, c.d_src, c.scratch_bwd_d}, [&c, bd, this]() {
        bd.execute(stream_, args({{DNNL_ARG_DIFF_DST, c.d_conv_out},
                                  {DNNL_ARG_WEIGHTS, c.w_bwd_d},
                                  {DNNL_ARG_DIFF_SRC, c.d_src}},
                                 c.scratch_bwd_d));
      });
    }
  }
  memory_.parameter_bytes += int64_t(params_.values.size()) * 4 * 4;  // weights, grads, m, v
  plan_buffers();
}

// Every activation, gradient and scratchpad of the step gets a lifetime: the
// first to last operation touching it, in execution order (op 0 writes the
// input; then forward, loss, backward, gradient reorders). Buffers whose
// lifetimes do not overlap may share memory: the big conv outputs live only
// from their convolution to their pooling, so they share with the gradients.
void CpuTrainingStep::plan_buffers() {
  std::vector<TensorLifetime> lifetimes;
  for (const auto& b : buffers_) lifetimes.push_back({b.name, b.bytes, INT_MAX, -1});
  int index = 0;
  auto visit = [&](const std::vector<Mem>& uses) {
    for (const Mem& m : uses) {
      if (!m) continue;
      auto it = buffer_of_.find(m.get());
      if (it == buffer_of_.end()) continue;  // parameters and gradients: not planned
      auto& t = lifetimes[it->second];
      t.first_use = std::min(t.first_use, index);
      t.last_use = std::max(t.last_use, index);
    }
    ++index;
  };
  visit({input_user_});  // written by run() before the first operation
  for (const auto& op : forward_ops_) visit(op.uses);
  loss_op_ = index;
  const DenseBlock& last = denses_.back();
  visit({last.out, last.d_out});
  for (const auto& op : backward_ops_) visit(op.uses);
  for (const auto& op : grad_ops_) visit(op.uses);
  op_count_ = index;
  for (auto& t : lifetimes)
    if (t.last_use < 0) t.first_use = 0, t.last_use = index - 1;  // unused: keep it apart
  // The loss overwrites the logits with their gradient row by row: in place.
  const size_t logits = buffer_of_.at(last.out.get()), d_logits = buffer_of_.at(last.d_out.get());
  if (lifetimes[logits].last_use == loss_op_ && lifetimes[d_logits].first_use == loss_op_ &&
      logits < d_logits)
    lifetimes[d_logits].in_place_of = int(logits);
  step_memory_ =
      std::make_unique<StepMemory>(lifetimes, op_count_, *resource_, options_.device.stream,
                                   options_.device.planned, [this](size_t i, void* address) {
                                     for (Mem& m : buffers_[i].handles) m.set_data_handle(address);
                                   });
  const MemoryPlan& plan = step_memory_->plan();
  memory_.activation_bytes = int64_t(plan.arena_bytes);
  memory_.plan = step_memory_->describe();
  char line[240];
  std::snprintf(line, sizeof line,
                "oneDNN %d.%d.%d; activation arena %.1f MB (%.1f MB unplanned), %s through %s",
                dnnl_version()->major, dnnl_version()->minor, dnnl_version()->patch,
                plan.arena_bytes / 1e6, plan.unplanned_bytes / 1e6,
                options_.device.planned ? "planned" : "per tensor", resource_->name().c_str());
  memory_.detail = line;
}

void CpuTrainingStep::build_conv(size_t i, const Mem& src_in, std::vector<Op>& weight_ops) {
  const ConvShape& s = shape_.convs[i];
  ConvBlock c;
  c.s = s;
  const int n = shape_.batch;
  auto any4 = [](Mem::dims d) { return Mem::desc(d, dt::f32, tag::any); };
  Mem::dims w_dims = {s.out_c, s.in_c, s.kernel, s.kernel};
  Mem::dims conv_dims = dims4(n, s.out_c, s.conv_h, s.conv_w);
  Mem::dims strides = {1, 1}, pad = {s.pad, s.pad};
  auto bias_md = Mem::desc({s.out_c}, dt::f32, tag::x);

  // The first block lets oneDNN choose the input layout (the user's NCHW batch
  // is reordered into it); later blocks take the previous block's exact layout.
  auto src_md = i == 0 ? any4(dims4(n, s.in_c, s.in_h, s.in_w)) : src_in.get_desc();
  const bool bn = s.batch_norm;  // then no bias, and the ReLU follows the normalisation
  const dnnl::primitive_attr attr = user_scratchpad(/*relu=*/!bn);
  auto fwd_desc = bn ? dnnl::convolution_forward::desc(
                           dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                           src_md, any4(w_dims), any4(conv_dims), strides, pad, pad)
                     : dnnl::convolution_forward::desc(
                           dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                           src_md, any4(w_dims), bias_md, any4(conv_dims), strides, pad, pad);
  c.fwd_pd = dnnl::convolution_forward::primitive_desc(fwd_desc, attr, engine_);
  if (i == 0) {
    input_ = c.fwd_pd.src_desc() == src_in.get_desc()
                 ? src_in
                 : make(c.fwd_pd.src_desc(), "input_reordered");
    c.src = input_;
  } else {
    c.src = src_in;
  }
  const std::string tag = "conv" + std::to_string(i + 1);
  c.conv_out = make(c.fwd_pd.dst_desc(), tag + ".out");

  // Weights: canonical OIHW view into the flat parameter vector.
  const auto& w_info = params_.info("conv" + std::to_string(i + 1) + ".weight");
  auto w_canon_md = Mem::desc(w_dims, dt::f32, tag::oihw);
  c.w_canon = view(w_canon_md, params_.data(w_info));
  c.w_fwd = c.fwd_pd.weights_desc() == w_canon_md ? c.w_canon : persistent(c.fwd_pd.weights_desc());
  c.dw_canon = view(w_canon_md, grads_.data(w_info));
  if (!bn) {
    const auto& b_info = params_.info("conv" + std::to_string(i + 1) + ".bias");
    c.b = view(bias_md, params_.data(b_info));
    c.db = view(bias_md, grads_.data(b_info));
    c.act = c.conv_out;
  } else {
    // Batch norm over the conv output: scale/shift are bnK.weight/bias, the
    // batch statistics land in mean/variance (kept for backward).
    const std::string bn_name = "bn" + std::to_string(i + 1);
    const auto& g_info = params_.info(bn_name + ".weight");
    const auto& b_info = params_.info(bn_name + ".bias");
    auto channel_md = Mem::desc({s.out_c}, dt::f32, tag::x);
    c.gamma = view(channel_md, params_.data(g_info));
    c.beta = view(channel_md, params_.data(b_info));
    c.dgamma = view(channel_md, grads_.data(g_info));
    c.dbeta = view(channel_md, grads_.data(b_info));
    c.running_mean = view(channel_md, bn_buffers_.running_mean(int(i)));
    c.running_var = view(channel_md, bn_buffers_.running_var(int(i)));
    const auto flags = dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;
    c.bn_fwd_pd = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(dnnl::prop_kind::forward_training,
                                                c.conv_out.get_desc(), kBatchNormEpsilon, flags),
        user_scratchpad(), engine_);
    c.bn_infer_pd = dnnl::batch_normalization_forward::primitive_desc(
        dnnl::batch_normalization_forward::desc(
            dnnl::prop_kind::forward_inference, c.conv_out.get_desc(), kBatchNormEpsilon,
            flags | dnnl::normalization_flags::use_global_stats),
        user_scratchpad(), engine_);
    c.bn_out = make(c.bn_fwd_pd.dst_desc(), tag + ".bn_out");
    c.mean = persistent(c.bn_fwd_pd.mean_desc());
    c.variance = persistent(c.bn_fwd_pd.variance_desc());
    c.bn_bwd_pd = dnnl::batch_normalization_backward::primitive_desc(
        dnnl::batch_normalization_backward::desc(dnnl::prop_kind::backward, c.bn_out.get_desc(),
                                                 c.conv_out.get_desc(), kBatchNormEpsilon, flags),
        user_scratchpad(), engine_, c.bn_fwd_pd);
    c.relu_fwd_pd = dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                    dnnl::algorithm::eltwise_relu, c.bn_out.get_desc(), 0.f),
        user_scratchpad(), engine_);
    c.scratch_bn_fwd = scratch(c.bn_fwd_pd, tag + ".bn_fwd");
    c.scratch_bn_infer = scratch(c.bn_infer_pd, tag + ".bn_infer");
    c.scratch_bn_bwd = scratch(c.bn_bwd_pd, tag + ".bn_bwd");
    c.scratch_relu_fwd = scratch(c.relu_fwd_pd, tag + ".relu");
    c.act = c.bn_out;
  }

  // Pooling.
  if (s.pool > 1) {
    Mem::dims pooled_dims = dims4(n, s.out_c, s.out_h, s.out_w);
    Mem::dims kernel = {s.pool, s.pool}, pstride = {s.pool, s.pool}, zero = {0, 0};
    // A trailing row/column that does not fill a window is dropped (floor), as
    // in Keras and PyTorch.
    Mem::dims pad_r = {0, 0};
    auto pool_desc = dnnl::pooling_forward::desc(dnnl::prop_kind::forward_training,
                                                 dnnl::algorithm::pooling_max, c.act.get_desc(),
                                                 any4(pooled_dims), pstride, kernel, zero, pad_r);
    c.pool_pd = dnnl::pooling_forward::primitive_desc(pool_desc, user_scratchpad(), engine_);
    c.pooled = make(c.pool_pd.dst_desc(), tag + ".pooled");
    c.workspace = make(c.pool_pd.workspace_desc(), tag + ".pool_workspace");
    auto pool_bwd_desc =
        dnnl::pooling_backward::desc(dnnl::algorithm::pooling_max, c.act.get_desc(),
                                     c.pooled.get_desc(), pstride, kernel, zero, pad_r);
    c.pool_bwd_pd = dnnl::pooling_backward::primitive_desc(pool_bwd_desc, user_scratchpad(),
                                                           engine_, c.pool_pd);
    c.scratch_pool = scratch(c.pool_pd, tag + ".pool");
    c.scratch_pool_bwd = scratch(c.pool_bwd_pd, tag + ".pool_bwd");
    c.d_pooled = make(c.pooled.get_desc(), tag + ".d_pooled");
    c.d_act = make(c.act.get_desc(), bn ? tag + ".d_bn_out" : tag + ".d_out");
  } else {
    c.pooled = c.act;
    c.d_pooled = make(c.act.get_desc(), bn ? tag + ".d_bn_out" : tag + ".d_out");
    c.d_act = c.d_pooled;
  }
  c.d_conv_out = bn ? make(c.conv_out.get_desc(), tag + ".d_out") : c.d_act;

  // Backward weights.
  auto bwd_w_desc = bn ? dnnl::convolution_backward_weights::desc(
                             dnnl::algorithm::convolution_direct, c.src.get_desc(), any4(w_dims),
                             c.conv_out.get_desc(), strides, pad, pad)
                       : dnnl::convolution_backward_weights::desc(
                             dnnl::algorithm::convolution_direct, c.src.get_desc(), any4(w_dims),
                             bias_md, c.conv_out.get_desc(), strides, pad, pad);
  c.bwd_w_pd = dnnl::convolution_backward_weights::primitive_desc(bwd_w_desc, user_scratchpad(),
                                                                  engine_, c.fwd_pd);
  c.scratch_fwd = scratch(c.fwd_pd, tag + ".conv_fwd");
  c.scratch_bwd_w = scratch(c.bwd_w_pd, tag + ".conv_bwd_w");
  c.dw_bwd = c.bwd_w_pd.diff_weights_desc() == w_canon_md
                 ? c.dw_canon
                 : make(c.bwd_w_pd.diff_weights_desc(), tag + ".d_weight");
  // Backward data (not needed for the first block: nobody wants d(image)).
  if (i > 0) {
    const ConvBlock& prev = convs_[i - 1];
    auto bwd_d_desc = dnnl::convolution_backward_data::desc(
        dnnl::algorithm::convolution_direct, prev.d_pooled.get_desc(), any4(w_dims),
        c.conv_out.get_desc(), strides, pad, pad);
    c.bwd_d_pd = dnnl::convolution_backward_data::primitive_desc(bwd_d_desc, user_scratchpad(),
                                                                 engine_, c.fwd_pd);
    c.scratch_bwd_d = scratch(c.bwd_d_pd, tag + ".conv_bwd_d");
    c.d_src = prev.d_pooled;
    c.w_bwd_d =
        c.bwd_d_pd.weights_desc() == w_canon_md ? c.w_canon : persistent(c.bwd_d_pd.weights_desc());
  }
  convs_.push_back(c);
  ConvBlock& cb = convs_.back();
  reorder_if_needed(cb.w_canon, cb.w_fwd, weight_ops);
  if (i > 0) reorder_if_needed(cb.w_canon, cb.w_bwd_d, weight_ops);

  if (i == 0) reorder_if_needed(input_user_, input_, forward_ops_);
  auto conv = dnnl::convolution_forward(cb.fwd_pd);
  add(forward_ops_, {cb.src, cb.conv_out, cb.scratch_fwd}, [&cb, conv, this]() {
    std::unordered_map<int, Mem> a = {
        {DNNL_ARG_SRC, cb.src}, {DNNL_ARG_WEIGHTS, cb.w_fwd}, {DNNL_ARG_DST, cb.conv_out}};
    if (cb.b) a.insert({DNNL_ARG_BIAS, cb.b});
    conv.execute(stream_, args(std::move(a), cb.scratch_fwd));
  });
  if (bn) {
    auto train = dnnl::batch_normalization_forward(cb.bn_fwd_pd);
    auto infer = dnnl::batch_normalization_forward(cb.bn_infer_pd);
    add(forward_ops_, {cb.conv_out, cb.bn_out, cb.scratch_bn_fwd, cb.scratch_bn_infer},
        [&cb, train, infer, i, this]() {
          std::unordered_map<int, Mem> a = {{DNNL_ARG_SRC, cb.conv_out},
                                            {DNNL_ARG_DST, cb.bn_out},
                                            {DNNL_ARG_SCALE, cb.gamma},
                                            {DNNL_ARG_SHIFT, cb.beta}};
          if (!training_) {
            a.insert({DNNL_ARG_MEAN, cb.running_mean});
            a.insert({DNNL_ARG_VARIANCE, cb.running_var});
            infer.execute(stream_, args(std::move(a), cb.scratch_bn_infer));
            return;
          }
          a.insert({DNNL_ARG_MEAN, cb.mean});
          a.insert({DNNL_ARG_VARIANCE, cb.variance});
          train.execute(stream_, args(std::move(a), cb.scratch_bn_fwd));
          stream_.wait();  // the running statistics read the batch's on the host
          bn_buffers_.update(int(i), static_cast<const float*>(cb.mean.get_data_handle()),
                             static_cast<const float*>(cb.variance.get_data_handle()), cb.s.out_c,
                             int64_t(shape_.batch) * cb.s.conv_h * cb.s.conv_w);
        });
    auto relu = dnnl::eltwise_forward(cb.relu_fwd_pd);
    add(forward_ops_, {cb.bn_out, cb.scratch_relu_fwd}, [&cb, relu, this]() {
      relu.execute(stream_, args({{DNNL_ARG_SRC, cb.bn_out}, {DNNL_ARG_DST, cb.bn_out}},
                                 cb.scratch_relu_fwd));
    });
  }
  if (cb.pooling()) {
    auto pool = dnnl::pooling_forward(cb.pool_pd);
    add(forward_ops_, {cb.act, cb.pooled, cb.workspace, cb.scratch_pool}, [&cb, pool, this]() {
      pool.execute(stream_, args({{DNNL_ARG_SRC, cb.act},
                                  {DNNL_ARG_DST, cb.pooled},
                                  {DNNL_ARG_WORKSPACE, cb.workspace}},
                                 cb.scratch_pool));
    });
  }
}

void CpuTrainingStep::build_dense(size_t i, const Mem& src) {
  const DenseShape& s = shape_.denses[i];
  const int n = shape_.batch;
  DenseBlock d;
  d.s = s;
  auto src_md = Mem::desc({n, s.in}, dt::f32, tag::nc);
  auto w_md = Mem::desc({s.out, s.in}, dt::f32, tag::oi);
  auto b_md = Mem::desc({s.out}, dt::f32, tag::x);
  auto dst_md = Mem::desc({n, s.out}, dt::f32, tag::nc);
  const dnnl::primitive_attr attr = user_scratchpad(s.relu);
  d.fwd_pd = dnnl::inner_product_forward::primitive_desc(
      dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_training, src_md, w_md, b_md,
                                        dst_md),
      attr, engine_);
  d.bwd_d_pd = dnnl::inner_product_backward_data::primitive_desc(
      dnnl::inner_product_backward_data::desc(src_md, w_md, dst_md), user_scratchpad(), engine_,
      d.fwd_pd);
  d.bwd_w_pd = dnnl::inner_product_backward_weights::primitive_desc(
      dnnl::inner_product_backward_weights::desc(src_md, w_md, b_md, dst_md), user_scratchpad(),
      engine_, d.fwd_pd);
  const std::string base = "fc" + std::to_string(i + 1);
  d.w = view(w_md, params_.data(params_.info(base + ".weight")));
  d.b = view(b_md, params_.data(params_.info(base + ".bias")));
  d.dw = view(w_md, grads_.data(grads_.info(base + ".weight")));
  d.db = view(b_md, grads_.data(grads_.info(base + ".bias")));
  d.src = src;
  d.out = make(dst_md, base + ".out");
  d.d_out = make(dst_md, base + ".d_out");
  d.scratch_fwd = scratch(d.fwd_pd, base + ".fwd");
  d.scratch_bwd_d = scratch(d.bwd_d_pd, base + ".bwd_d");
  d.scratch_bwd_w = scratch(d.bwd_w_pd, base + ".bwd_w");
  d.d_src = i == 0 ? alias(src_md, d_flat_nchw_) : denses_[i - 1].d_out;
  d.mask.assign(size_t(n) * s.out, 1.0f);
  denses_.push_back(d);
  DenseBlock& db = denses_.back();
  auto ip = dnnl::inner_product_forward(db.fwd_pd);
  add(forward_ops_, {db.src, db.out, db.scratch_fwd}, [&db, ip, this]() {
    ip.execute(stream_, args({{DNNL_ARG_SRC, db.src},
                              {DNNL_ARG_WEIGHTS, db.w},
                              {DNNL_ARG_BIAS, db.b},
                              {DNNL_ARG_DST, db.out}},
                             db.scratch_fwd));
  });
  if (s.dropout_after > 0) {
    // Inverted dropout, in place on the output; the mask is kept for backward.
    add(forward_ops_, {db.out}, [&db, this]() {
      if (!training_) return;
      float* y = static_cast<float*>(db.out.get_data_handle());
      const float p = db.s.dropout_after;
      const uint64_t stream = elementwise::dropout_stream(step_ + 1, int(&db - denses_.data()));
      // Indexed by global row: a slice of a batch draws the whole batch's masks.
      const uint64_t first = uint64_t(slice_.first_row) * uint64_t(db.s.out);
      for (size_t j = 0; j < db.mask.size(); ++j) {
        db.mask[j] = elementwise::dropout_scale(options_.dropout_seed, stream, first + j, p);
        y[j] *= db.mask[j];
      }
    });
  }
}

StepResult CpuTrainingStep::run(const float* images, const int32_t* labels, int count,
                                bool training, bool backward) {
  require(count >= 1 && count <= shape_.batch, "batch of " + std::to_string(count) +
                                                   " images does not fit the compiled batch of " +
                                                   std::to_string(shape_.batch));
  if (shape_.has_batch_norm()) {
    // The batch's statistics must not count padding rows (the trainer drops
    // a short last batch of a batch-norm network), and the backward pass
    // needs the statistics of a training forward.
    require(!training || count == shape_.batch,
            "batch norm trains on full batches: " + std::to_string(count) + " of " +
                std::to_string(shape_.batch) + " rows");
    require(training || !backward, "batch norm: gradients need training mode");
    if (training) bn_buffers_.batches_tracked++;
  }
  training_ = training;
  StepMemory& memory = *step_memory_;
  int k = 0;  // the operation index, as planned
  // Around every operation: its tensors' memory (a no-op when planned).
  // Planned: nothing to do or time (no clock reads on the step's hot path).
  auto enter = [&] {
    if (memory.planned()) return;
    const auto t = Clock::now();
    memory.begin_op(k);
    profile_.allocator += seconds_since(t);
  };
  auto leave = [&] {
    if (memory.planned()) return void(++k);
    const auto t = Clock::now();
    memory.end_op(k++);
    profile_.allocator += seconds_since(t);
  };
  StepResult result;
  try {
    enter();
    const size_t image_floats = size_t(shape_.channels) * shape_.height * shape_.width;
    float* user = static_cast<float*>(input_user_.get_data_handle());
    std::memcpy(user, images, sizeof(float) * image_floats * count);
    if (count < shape_.batch)
      std::memset(user + image_floats * count, 0,
                  sizeof(float) * image_floats * (shape_.batch - count));
    leave();
    auto start = Clock::now();
    if (weights_dirty_) {
      for (auto& op : weight_ops_) op.run();
      weights_dirty_ = false;
    }
    for (auto& op : forward_ops_) {
      enter();
      op.run();
      leave();
    }
    stream_.wait();  // the loss reads the logits on the host
    enter();
    result = loss_and_gradient(labels, count, backward);
    leave();
    profile_.forward += seconds_since(start);
    if (backward) {
      start = Clock::now();
      for (auto* ops : {&backward_ops_, &grad_ops_})
        for (auto& op : *ops) {
          enter();
          op.run();
          leave();
        }
      stream_.wait();
      profile_.backward += seconds_since(start);
    } else {
      while (k < op_count_) leave();  // frees what the skipped backward would have read
    }
  } catch (...) {
    memory.abandon_step();
    throw;
  }
  return result;
}

StepResult CpuTrainingStep::loss_and_gradient(const int32_t* labels, int count, bool backward) {
  // Softmax cross-entropy over 2 classes, mean over the `count` real rows.
  // d_logits may share memory with the logits (planned in place).
  DenseBlock& last = denses_.back();
  const float* logits = static_cast<const float*>(last.out.get_data_handle());
  float* d_logits = static_cast<float*>(last.d_out.get_data_handle());
  StepResult r;
  for (int row = 0; row < shape_.batch; ++row) {
    const bool real = row < count && labels;
    const int y = real ? labels[row] : 0;
    if (real && y != 0 && y != 1)
      fail("label " + std::to_string(y) + " is not 0 (benign) or 1 (malignant)");
    const elementwise::SoftmaxRow s =
        elementwise::softmax_xent(logits[2 * row], logits[2 * row + 1], y);
    probs_[2 * row] = s.p0;
    probs_[2 * row + 1] = s.p1;
    if (real) {
      r.loss_sum += s.loss;
      r.correct += s.correct;
    }
    // The mean over the global batch (this call's rows when not a slice).
    const int denominator = slice_.global_count > 0 ? slice_.global_count : count;
    elementwise::softmax_xent_grad(s, y, real && backward ? 1.0f / float(denominator) : 0.0f,
                                   &d_logits[2 * row], &d_logits[2 * row + 1]);
  }
  return r;
}

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<TrainingStep> compile(const ModelSpec& spec, const NetworkShape& shape,
                                        const StepOptions& options) override {
    (void)spec;  // the shape carries everything the CPU step needs
    return std::make_unique<CpuTrainingStep>(shape, options);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() {
  return std::make_unique<CpuBackend>();
}

}  // namespace histocnn
