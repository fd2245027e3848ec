// The CUDA training step's declaration, shared by its files:
//   cuda_step.cpp         construction, staging, train/predict/gradients, state
//   cuda_step_layers.cpp  cuDNN descriptors and algorithm choice per conv block
//   cuda_step_wgrad.cpp   conv1's weight gradient: its routes timed, the choice
//   cuda_step_conv_pool.cpp  conv1's forward: cuDNN + pool or our fused kernel, timed
//   cuda_step_pooled_wgrad.cpp  later blocks' weight gradients: cuDNN's or ours from the
//                         pooled gradient, timed; every block's routes for the schedule
//   cuda_step_pooled_dgrad.cpp  later blocks' data gradients: cuDNN's or ours from the
//                         pooled gradient, timed
//   cuda_step_ops.cpp     the dispatcher: one schedule operation -> cuDNN/cuBLAS/kernels
// Internal to the CUDA backend (make_cuda_backend in cuda_backend.h is the API).
//
// The CUDA training step: a dispatcher over the schedule of cuda_schedule.h.
//
// Memory placement (all from the DeviceContext's resource):
//   persistent  one block: parameters | gradients | Adam m | Adam v (the flat
//               PyTorch-layout vector, so Adam is one kernel), under bf16
//               their bf16 copy and a bf16 gradient scratch, under
//               --channels-last the conv weights as KRSC filters (rewritten
//               after each update) and their KRSC gradients, then the
//               device step counter, Adam constants, loss/correct
//               accumulators, labels, row count, probabilities, a ones vector
//               (for the bias gradients), cuBLAS's workspace and the
//               landing buffer a batch's images cross PCIe into.
//   per step    activations, gradients (bf16 in the conv blocks under
//               --precision bf16) and cuDNN workspaces through
//               StepMemory: one planned arena ("plan") or per tensor (direct,
//               pool, async) in stream order.
//   host        page-locked batch buffers the trainer's loader fills
//               (input_buffers()): train() sends their images by DMA on a
//               copy stream to the landing buffer, while the previous batch
//               computes (run_input copies fp32 images into the step, or
//               expands bytes and tables: train_bytes, core/byte_images.h);
//               images from anywhere else go first into one of two pinned
//               staging buffers (labels and row count always do).
// No host synchronisation per step: loss and correct count accumulate on the
// device and are read by take_results(); phase times come from CUDA events.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "backends/cuda/bn_kernels.h"
#include "backends/cuda/conv_pool_kernels.h"
#include "backends/cuda/cuda_context.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "backends/cuda/cudnn_graph.h"
#include "backends/cuda/device_timing.h"
#include "backends/cuda/pool_kernels.h"
#include "backends/cuda/pooled_dgrad_kernels.h"
#include "backends/cuda/pooled_wgrad_kernels.h"
#include "backends/cuda/wgrad_kernels.h"
#include "memory/cuda_resources.h"
#include "memory/pinned_host_source.h"
#include "memory/step_memory.h"

namespace histocnn::cuda {

struct ConvLayer {
  TensorDesc x, y, pooled, bias;
  FilterDesc w;
  ConvDesc conv;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  ConvWorkspaces workspace;
  // Our direct weight-gradient kernel, when it applies and measured faster
  // than cuDNN's deterministic algorithms (applies = false: cuDNN's).
  SmallWgradPlan small_wgrad;
  // Blocks after the first: our weight-gradient kernel from the pooled
  // gradient, when it applies and measured faster than cuDNN's algorithm
  // (applies = false: cuDNN's).
  PooledWgradPlan pooled_wgrad;
  // Blocks after the first: our data-gradient kernel from the pooled
  // gradient, when it applies and measured faster than cuDNN's algorithm
  // (applies = false: cuDNN's).
  PooledDgradPlan pooled_dgrad;
  // conv1: our fused convolution + pool kernel, when it applies and measured
  // faster than cuDNN's forward and our pool kernel (applies = false: those).
  ConvPoolPlan conv_pool;
  // --cudnn-graph: the graph API's plan per direction (ConvDirection order),
  // null where that direction stays on the legacy API.
  std::array<std::unique_ptr<GraphConv>, 3> graph;
  GraphConv* graph_for(ConvDirection d) const { return graph[size_t(d)].get(); }
  // Where the bias and ReLU are applied (no batch norm): in our pool kernel
  // after the max (pool > 1: the conv writes its raw output), else in one
  // cuDNN call with the convolution (`fused`, where its algorithm allows) or
  // as two cuDNN calls after it.
  bool bias_relu_in_pool = false;
  bool fused = false;
  int64_t w_offset = 0, b_offset = 0;
  // --channels-last: where its filters (and their gradients) start in the
  // filter block, in elements.
  int64_t filter_offset = 0;
  // Batch norm (spec 'bn'): the conv has no bias; scale/shift are bnK.weight
  // and bnK.bias; the statistics live in the persistent block.
  bool batch_norm = false;
  TensorDesc bn;  // 1 x C x 1 x 1, derived from y
  int64_t gamma_offset = 0, beta_offset = 0;
  size_t running_mean = 0, running_var = 0, saved_mean = 0, saved_inv_std = 0;  // byte offsets
};

struct DenseLayer {
  int64_t w_offset = 0, b_offset = 0;
};

// Persistent device block layout (byte offsets).
struct Persistent {
  size_t params = 0, shadows = 0, filters = 0, filter_grads = 0, step = 0, adam = 0,
         learning_rate = 0, loss = 0, correct = 0, labels = 0, meta = 0, probs = 0, ones = 0,
         cublas = 0, landing = 0, total = 0;
};

// Why `precision` cannot run on the context's GPU (one sentence), or "".
std::string precision_unsupported_on(const Context& context, const std::string& precision);

class CudaTrainingStep final : public TrainingStep {
 public:
  CudaTrainingStep(std::shared_ptr<Context> context, const ModelSpec& spec,
                   const NetworkShape& shape, const StepOptions& options);
  ~CudaTrainingStep() override;

  StepResult train_slice(const float* images, const int32_t* labels, int count,
                         const BatchSlice& slice) override;
  bool takes_byte_images() const override { return shape_.channels == 3; }
  StepResult train_bytes(const ByteImages& images, const int32_t* labels, int count,
                         const BatchSlice& slice) override;
  bool deferred_results() const override { return true; }
  StepResult take_results() override;
  void predict(const float* images, int count, float* probabilities) override;
  void predict_features(const float* images, int count, float* probabilities,
                        float* features) override;
  void predict_bytes(const ByteImages& images, int count, float* probabilities,
                     float* features) override;
  StepResult gradients(const float* images, const int32_t* labels, int count, bool training_mode,
                       Parameters* grads) override;
  void set_parameters(const Parameters& params) override;
  Parameters parameters() const override;
  void set_learning_rate(float learning_rate) override;
  Buffers buffers() const override;
  void set_buffers(const Buffers& buffers) override;
  void set_optimizer_state(const Parameters& m, const Parameters& v, int64_t step) override;
  void optimizer_state(Parameters* m, Parameters* v, int64_t* step) const override;
  MemoryReport memory() const override;
  StepProfile profile() const override { return profile_; }
  const NetworkShape& shape() const override { return shape_; }
  nlohmann::json details() const override;
  std::shared_ptr<HostBufferSource> input_buffers() const override { return input_source_; }

 private:
  enum class Mode { kTrain, kGradients, kPredict };
  void check_fits();
  void build_layers();
  // cuDNN's algorithms for one layer (cuda_step_layers.cpp): the candidates,
  // the deterministic choice within the workspace limit, its record.
  struct ConvCandidates {
    std::vector<AlgorithmCandidate> forward, backward_data, backward_filter;
  };
  ConvCandidates timed_candidates(const ConvLayer& c, size_t k);
  ConvCandidates heuristic_candidates(const ConvLayer& c);
  void choose_algorithms(ConvLayer& c, size_t k);
  void choose_bias_relu(ConvLayer& c, size_t k) const;
  nlohmann::json algorithm_record(const ConvLayer& c, size_t k, int f, int d, int w) const;
  // Conv block k's tensors and dims, by value (a reference into the
  // temporary schedule would dangle).
  CudaSchedule::ConvTensors conv_tensors(size_t k) const {
    return build_cuda_schedule(shape_, {}, format()).convs[k];
  }
  // conv1's weight gradient (cuda_step_wgrad.cpp): our kernels' plans,
  // the routes timed, the choice.
  SmallWgradPlan small_wgrad_plan(size_t k, int pool = 1) const;
  // Blocks that fill the GPU a few times over: our kernels' plans aim at it.
  int target_blocks() const;
  // conv1's forward (cuda_step_conv_pool.cpp): the fused kernel's plan, the
  // routes timed, the choice; the routes the schedule is built with.
  ConvPoolPlan conv_pool_plan(size_t k) const;
  void choose_forward(ConvLayer& c, size_t k, nlohmann::json& record);
  float time_cudnn_forward_and_pool(const ConvLayer& c, const CudaSchedule::ConvTensors& t,
                                    DeviceScratch& scratch);
  float time_conv_pool(const ConvPoolPlan& plan, const CudaSchedule::ConvTensors& t,
                       DeviceScratch& scratch, Contenders& ours);
  // Every block's routes, as chosen: what the schedule is built with.
  std::vector<ConvRoutes> conv_routes() const;
  void choose_weight_gradient(ConvLayer& c, size_t k, const SmallWgradPlan& plan,
                              bool cudnn_has_one, nlohmann::json& record);
  std::string weight_gradient_route(float cudnn_ms, float direct_ms, float pooled_ms) const;
  std::pair<int, float> time_cudnn_filter(const ConvLayer& c, void* x, void* dy, float* w,
                                          float* ws, size_t limit);
  void take_small_wgrad(ConvLayer& c, const SmallWgradPlan& plan, nlohmann::json& record) const;
  // The later blocks' weight and data gradients: our kernels' plans and
  // times (cuda_step_pooled_wgrad.cpp, cuda_step_pooled_dgrad.cpp), the two
  // routes chosen together (cuda_step_later_routes.cpp, later_routes.h).
  std::vector<PooledWgradPlan> pooled_wgrad_plans(const ConvLayer& c, size_t k) const;
  std::pair<PooledWgradPlan, float> time_pooled_wgrad(const std::vector<PooledWgradPlan>& plans,
                                                      size_t k, nlohmann::json& times);
  float time_cudnn_filter_choice(const ConvLayer& c, size_t k);
  struct DgradContest {
    PooledDgradPlan fastest;
    float pooled_ms = -1, cudnn_ms = -1;  // < 0: not a contender
    // The pool backward with the conv output's gradient and without it (0:
    // not timed; < 0: its output did not fit).
    float pool_full_ms = 0, pool_bias_ms = 0;
  };
  std::vector<PooledDgradPlan> pooled_dgrad_plans(const ConvLayer& c, size_t k) const;
  DgradContest time_pooled_dgrad(const ConvLayer& c, size_t k,
                                 const std::vector<PooledDgradPlan>& plans, bool pool_backward,
                                 nlohmann::json& times);
  void choose_later_gradients(ConvLayer& c, size_t k, bool cudnn_has_weights,
                              nlohmann::json& record);
  void choose_graphs(ConvLayer& c, size_t k, nlohmann::json& record);
  float time_on_scratch(const GraphConv::Run& run, size_t k);
  // A batch's images as they cross to the landing buffer: one part (fp32
  // images) or two (bytes, tables), each with its place there
  // (landing_layout).
  struct InputParts {
    const void* data[2] = {nullptr, nullptr};
    size_t bytes[2] = {0, 0};
    size_t offset[2] = {0, 0};
    bool byte_images = false;
  };
  InputParts float_parts(const float* images, int count) const;
  InputParts byte_parts(const ByteImages& images, int count) const;
  // The batch on its way to the landing buffer (by DMA from where it is when
  // input_source_ made every part, else through a staging slot) and its
  // labels and row count into the slot; returns once the parts may be
  // overwritten.
  void stage(InputParts images, const int32_t* labels, int count, const BatchSlice& slice = {});
  void stage(const float* images, const int32_t* labels, int count, const BatchSlice& slice = {}) {
    stage(float_parts(images, count), labels, count, slice);
  }
  // The staged batch's forward, backward and update (train_slice, train_bytes).
  StepResult train_staged();
  // The staged batch's probabilities (and features, when not null) to the
  // host (predict_features, predict_bytes); synchronises.
  void predict_staged(int count, float* probabilities, float* features);
  // Batch norm: requires full batches; counts them (num_batches_tracked).
  void count_batch_norm_rows(int count);
  BatchMeta* meta() const { return reinterpret_cast<BatchMeta*>(persistent(layout_.meta)); }
  // Events and allocator seconds of one training step, read by
  // collect_profile() at take_results().
  struct StepTiming {
    // start, forward done (after the loss), backward done (after the
    // gradients' reduction), update done
    std::array<cudaEvent_t, 4> phase{};
    std::vector<cudaEvent_t> ops;  // --profile-layers: before each op, then after the last
    double allocator_forward = 0, allocator_backward = 0;  // host seconds (per-tensor memory)
  };
  StepTiming& next_timing();
  // features (predict): where the last dense layer's input rows [0, count)
  // are copied, enqueued right after the loss op while the plan keeps them.
  void run(Mode mode, bool training, int slot, StepTiming* timing = nullptr,
           float* features = nullptr, int count = 0);
  void train_eagerly(StepTiming& t);
  void launch_graphs(StepTiming& t);
  bool capture_graphs();
  cudaGraphExec_t capture(const std::function<void()>& body);
  void destroy_graphs();
  // One schedule operation (cuda_step_ops.cpp): the switch, and the
  // operations too long to stay in it.
  void run_op(const ScheduledOp& op, Mode mode, bool training, int slot);
  void run_input();
  void run_conv_forward(const ScheduledOp& op);
  void run_conv_pool_forward(const ScheduledOp& op);
  void run_batch_norm_forward(const ScheduledOp& op, bool training);
  void run_batch_norm_backward(const ScheduledOp& op);
  void run_loss(Mode mode, int slot);
  void run_dense_backward_weights(const ScheduledOp& op);
  void run_pool_relu_backward(const ScheduledOp& op);
  void run_conv_backward_filter(const ScheduledOp& op);
  void run_conv_backward_data(const ScheduledOp& op);
  void update();
  void refresh_filters();
  // Batch norm as our kernels (bn_kernels.h) under bf16 or channels last
  // (cuDNN's calls otherwise), over the partial sums of the schedule.
  bool batch_norm_is_ours() const { return bf16_ || channels_last_; }
  struct OwnBatchNorm;
  OwnBatchNorm own_batch_norm(const ConvLayer& c, const CudaSchedule::ConvTensors& t) const;
  void batch_norm_forward_ours(const ConvLayer& c, const CudaSchedule::ConvTensors& t,
                               bool training);
  void batch_norm_backward_ours(const ConvLayer& c, const CudaSchedule::ConvTensors& t);
  void reduce_gradients() {
    if (options_.reduce_gradients) options_.reduce_gradients(grads(), parameter_count_, stream_);
  }
  void bind_handles();
  // The constructor's parts, in its order (cuda_step.cpp).
  void lay_out_persistent_block();
  void allocate_persistent_block();
  void plan_step_tensors();
  void allocate_stages();
  void describe_memory();
  void gemm(const GemmCall& g, const float* a, const float* b, float* c);
  float* tensor(int id) const { return static_cast<float*>(addresses_[size_t(id)]); }
  Bf16* bf16_tensor(int id) const { return static_cast<Bf16*>(addresses_[size_t(id)]); }
  uint8_t* bytes(int id) const { return static_cast<uint8_t*>(addresses_[size_t(id)]); }
  char* persistent(size_t offset) const { return static_cast<char*>(persistent_) + offset; }
  float* params() const { return reinterpret_cast<float*>(persistent(layout_.params)); }
  float* grads() const { return params() + parameter_count_; }
  float* moment1() const { return params() + 2 * parameter_count_; }
  float* moment2() const { return params() + 3 * parameter_count_; }
  // --precision bf16: the parameters as the convolutions read them (written
  // by Adam), then room for cuDNN's bf16 weight gradients.
  Bf16* param_shadow() const { return reinterpret_cast<Bf16*>(persistent(layout_.shadows)); }
  Bf16* grad_shadow() const { return param_shadow() + parameter_count_; }
  // --channels-last: conv block c's KRSC filters, and (`gradient`) the
  // KRSC weight gradient cuDNN writes, in the maps' type.
  void* filters(const ConvLayer& c, bool gradient = false) const {
    return persistent(gradient ? layout_.filter_grads : layout_.filters) +
           size_t(c.filter_offset) * (bf16_ ? sizeof(Bf16) : sizeof(float));
  }
  // The weights a convolution reads: the fp32 parameters, or their bf16
  // copy; channels last, the KRSC filters made from them.
  const void* conv_weights(const ConvLayer& c) const {
    if (channels_last_) return filters(c);
    return bf16_ ? static_cast<const void*>(param_shadow() + c.w_offset) : params() + c.w_offset;
  }
  cudaStream_t stream() const { return stream_; }
  void sync() const { HISTOCNN_CUDA(cudaStreamSynchronize(stream_)); }
  std::string oom_hint() const;
  void collect_profile();

  std::shared_ptr<Context> context_;
  ModelSpec spec_;
  NetworkShape shape_;
  StepOptions options_;
  // --precision bf16: the conv blocks' maps in bf16 (CudaSchedule::bf16).
  bool bf16_ = options_.precision == "bf16";
  // --channels-last: the conv blocks' maps NHWC (CudaSchedule::channels_last).
  bool channels_last_ = options_.channels_last;
  MapFormat format() const { return {bf16_, channels_last_}; }
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  MemoryResource* resource_ = nullptr;
  std::unique_ptr<CudaDirectResource> own_resource_;
  int64_t parameter_count_ = 0;
  Parameters layout_params_;  // the layout (values unused)
  std::vector<ConvLayer> convs_;
  std::vector<DenseLayer> denses_;
  ActivationDesc relu_;
  // Global average pooling (spec 'gap'): a window over the whole last map.
  PoolDesc gap_pool_;
  TensorDesc gap_desc_;          // N x C x 1 x 1
  TensorDesc features_desc_;     // the last pooled map as the dense part reads it (fp32)
  int64_t batches_tracked_ = 0;  // bnK.num_batches_tracked (training forwards)
  CudaSchedule schedule_;
  std::unique_ptr<StepMemory> memory_;
  std::vector<void*> addresses_;
  Persistent layout_;
  void* persistent_ = nullptr;
  // Pinned staging, double-buffered: images (in the landing buffer's
  // layout), labels, count. `sent` marks when the images have crossed to the
  // landing buffer (on copy_stream_), `copied` when the labels and count have
  // (on stream_): then the slot may be refilled. `byte_images` and `count`
  // tell run_input how to make the step's input from the landing buffer.
  struct Stage {
    char* images = nullptr;
    bool byte_images = false;
    int count = 0;
    int32_t* labels = nullptr;
    BatchMeta* meta = nullptr;
    cudaEvent_t sent = nullptr, copied = nullptr;
  };
  Stage stages_[2];
  int stage_ = 0;
  // The batch's images cross PCIe on their own stream into the landing
  // buffer (layout_.landing) as soon as they are staged, while the previous
  // batch still computes; run_input() waits for them and copies them
  // device-to-device or expands their bytes (~two input batches' bytes at
  // HBM speed, against the PCIe copy that used to stall the step). `landing_read_` marks when that
  // copy has read the landing buffer, so the next batch may overwrite it.
  cudaStream_t copy_stream_ = nullptr;
  cudaEvent_t landing_read_ = nullptr;
  // The parts to the landing buffer on the copy stream (from the caller's
  // page-locked buffers, or from the staging slot they were copied to); fp32
  // rows past the count are zeroed there (bytes: the expansion zeroes them).
  void send(const Stage& s, const InputParts& parts);
  std::shared_ptr<PinnedHostSource> input_source_;
  int64_t batches_direct_ = 0, batches_staged_ = 0, batches_as_bytes_ = 0;
  double* host_results_ = nullptr;  // pinned: loss sum, then correct (as int) — read once per epoch
  // CUDA graphs of the steady-state step (planned memory only): forward (to
  // the loss), backward (with the gradients' reduction) and update, launched
  // back to back with events between them, so the phases are measured in
  // graph mode too. A capture that throws leaves graphs off (eager steps).
  cudaGraphExec_t graph_forward_ = nullptr, graph_backward_ = nullptr, graph_update_ = nullptr;
  bool graphs_failed_ = false;
  int eager_steps_ = 0;
  // Timing of the steps since the last take_results() (reused across epochs).
  std::vector<StepTiming> timing_;
  size_t timed_ = 0;
  StepProfile profile_;
  MemoryReport report_;
  nlohmann::json details_;
};

}  // namespace histocnn::cuda
