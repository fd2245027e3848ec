// The CUDA training step: a dispatcher over the schedule of cuda_schedule.h.
//
// Memory placement (all from the DeviceContext's resource):
//   persistent  one block: parameters | gradients | Adam m | Adam v (the flat
//               PyTorch-layout vector, so Adam is one kernel), then the
//               device step counter, Adam constants, loss/correct
//               accumulators, labels, row count, probabilities, a ones vector
//               (for the bias gradients) and cuBLAS's workspace.
//   per step    activations, gradients and cuDNN workspaces through
//               StepMemory: one planned arena ("plan") or per tensor (direct,
//               pool, async) in stream order.
//   host        two pinned staging buffers, filled by train() while the
//               previous batch computes.
// No host synchronisation per step: loss and correct count accumulate on the
// device and are read by take_results(); phase times come from CUDA events.
#include <algorithm>
#include <cstring>
#include <memory>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_context.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_schedule.h"
#include "core/error.h"
#include "memory/cuda_resources.h"
#include "memory/step_memory.h"

namespace histocnn {
namespace cuda {
namespace {

constexpr size_t kCublasWorkspace = size_t(32) << 20;  // NVIDIA's recommendation for Hopper

const char* fwd_name(int a) {
  static const char* n[] = {
      "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
      "WINOGRAD",      "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 8 ? n[a] : "?";
}
const char* bwd_data_name(int a) {
  static const char* n[] = {"ALGO_0",     "ALGO_1",   "FFT",
                            "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  return a >= 0 && a < 6 ? n[a] : "?";
}
const char* bwd_filter_name(int a) {
  static const char* n[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD_NONFUSED", "FFT_TILING"};
  return a >= 0 && a < 6 ? n[a] : "?";
}

template <typename Perf>
std::vector<AlgorithmCandidate> candidates(const Perf* perf, int count, bool timed) {
  std::vector<AlgorithmCandidate> out;
  for (int i = 0; i < count; ++i)
    out.push_back({int(perf[i].algo), perf[i].status == CUDNN_STATUS_SUCCESS, perf[i].memory,
                   perf[i].determinism == CUDNN_DETERMINISTIC, timed ? perf[i].time : -1.0f});
  return out;
}

struct ConvLayer {
  TensorDesc x, y, pooled, bias;
  FilterDesc w;
  ConvDesc conv;
  PoolDesc pool;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  ConvWorkspaces workspace;
  bool fused = false;  // conv + bias + ReLU in one cuDNN call
  int64_t w_offset = 0, b_offset = 0;
};

struct DenseLayer {
  int64_t w_offset = 0, b_offset = 0;
};

// Persistent device block layout (byte offsets).
struct Persistent {
  size_t params = 0, step = 0, adam = 0, loss = 0, correct = 0, labels = 0, meta = 0, probs = 0,
         ones = 0, cublas = 0, total = 0;
};

class CudaTrainingStep final : public TrainingStep {
 public:
  CudaTrainingStep(std::shared_ptr<Context> context, const ModelSpec& spec,
                   const NetworkShape& shape, const StepOptions& options);
  ~CudaTrainingStep() override;

  StepResult train_slice(const float* images, const int32_t* labels, int count,
                         const BatchSlice& slice) override;
  bool deferred_results() const override { return true; }
  StepResult take_results() override;
  void predict(const float* images, int count, float* probabilities) override;
  StepResult gradients(const float* images, const int32_t* labels, int count, bool training_mode,
                       Parameters* grads) override;
  void set_parameters(const Parameters& params) override;
  Parameters parameters() const override;
  void set_optimizer_state(const Parameters& m, const Parameters& v, int64_t step) override;
  void optimizer_state(Parameters* m, Parameters* v, int64_t* step) const override;
  MemoryReport memory() const override;
  StepProfile profile() const override { return profile_; }
  const NetworkShape& shape() const override { return shape_; }
  nlohmann::json details() const override { return details_; }

 private:
  enum class Mode { kTrain, kGradients, kPredict };
  void build_layers();
  void choose_algorithms(ConvLayer& c, size_t k);
  void stage(const float* images, const int32_t* labels, int count, const BatchSlice& slice = {});
  BatchMeta* meta() const { return reinterpret_cast<BatchMeta*>(persistent(layout_.meta)); }
  void run(Mode mode, bool training, int slot);
  void run_op(const ScheduledOp& op, Mode mode, bool training, int slot);
  void update();
  void reduce_gradients() {
    if (options_.reduce_gradients) options_.reduce_gradients(grads(), parameter_count_, stream_);
  }
  void bind_handles();
  void gemm(const GemmCall& g, const float* a, const float* b, float* c);
  float* tensor(int id) const { return static_cast<float*>(addresses_[size_t(id)]); }
  char* persistent(size_t offset) const { return static_cast<char*>(persistent_) + offset; }
  float* params() const { return reinterpret_cast<float*>(persistent(layout_.params)); }
  float* grads() const { return params() + parameter_count_; }
  float* moment1() const { return params() + 2 * parameter_count_; }
  float* moment2() const { return params() + 3 * parameter_count_; }
  cudaStream_t stream() const { return stream_; }
  void sync() const { HISTOCNN_CUDA(cudaStreamSynchronize(stream_)); }
  std::string oom_hint() const;
  void collect_profile();

  std::shared_ptr<Context> context_;
  ModelSpec spec_;
  NetworkShape shape_;
  StepOptions options_;
  cudaStream_t stream_ = nullptr;
  bool own_stream_ = false;
  MemoryResource* resource_ = nullptr;
  std::unique_ptr<CudaDirectResource> own_resource_;
  int64_t parameter_count_ = 0;
  Parameters layout_params_;  // the layout (values unused)
  std::vector<ConvLayer> convs_;
  std::vector<DenseLayer> denses_;
  ActivationDesc relu_;
  CudaSchedule schedule_;
  std::unique_ptr<StepMemory> memory_;
  std::vector<void*> addresses_;
  Persistent layout_;
  void* persistent_ = nullptr;
  // Pinned staging, double-buffered: images, labels, count; an event marks
  // when the device has copied each out.
  struct Stage {
    float* images = nullptr;
    int32_t* labels = nullptr;
    BatchMeta* meta = nullptr;
    cudaEvent_t copied = nullptr;
  };
  Stage stages_[2];
  int stage_ = 0;
  double* host_results_ = nullptr;  // pinned: loss sum, then correct (as int) — read once per epoch
  // CUDA graph of the steady-state step (planned memory only).
  cudaGraphExec_t graph_ = nullptr;
  int eager_steps_ = 0;
  // Phase timing: events per step since the last take_results().
  std::vector<std::array<cudaEvent_t, 4>> timing_;
  size_t timed_ = 0;
  StepProfile profile_;
  MemoryReport report_;
  nlohmann::json details_;
};

CudaTrainingStep::CudaTrainingStep(std::shared_ptr<Context> context, const ModelSpec& spec,
                                   const NetworkShape& shape, const StepOptions& options)
    : context_(std::move(context)), spec_(spec), shape_(shape), options_(options) {
  require(
      options.precision == "fp32" || options.precision == "tf32",
      "--precision " + options.precision + ": the CUDA backend trains in fp32 (default) or tf32");
  require(!options.cuda_graphs || options.device.planned,
          "--cuda-graphs: needs --allocator plan (a captured graph replays fixed addresses)");
  if (options.device.stream) {
    stream_ = static_cast<cudaStream_t>(options.device.stream);
  } else {
    HISTOCNN_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    own_stream_ = true;
  }
  if (options.device.memory) {
    resource_ = options.device.memory;
  } else {
    own_resource_ = std::make_unique<CudaDirectResource>();
    resource_ = own_resource_.get();
  }
  layout_params_ = Parameters::zeros(shape_);
  parameter_count_ = int64_t(layout_params_.values.size());
  build_layers();

  // Persistent block.
  auto reserve = [&](size_t bytes) {
    const size_t at = layout_.total;
    layout_.total += align_to(bytes, kAlignment);
    return at;
  };
  layout_.params = reserve(size_t(parameter_count_) * 4 * sizeof(float));
  layout_.step = reserve(sizeof(int64_t));
  layout_.adam = reserve(sizeof(elementwise::AdamStep));
  layout_.loss = reserve(2 * sizeof(double));  // slot 0: training, slot 1: one-off calls
  layout_.correct = reserve(2 * sizeof(int));
  layout_.labels = reserve(size_t(shape_.batch) * sizeof(int32_t));
  layout_.meta = reserve(sizeof(BatchMeta));
  layout_.probs = reserve(size_t(shape_.batch) * 2 * sizeof(float));
  layout_.ones = reserve(size_t(shape_.batch) * sizeof(float));
  layout_.cublas = reserve(kCublasWorkspace);
  try {
    persistent_ = resource_->allocate(layout_.total, stream_);
  } catch (const OutOfMemory& e) {
    throw OutOfMemory(e.requested, e.stats, resource_->name(),
                      OutOfMemory::join(e.hint, oom_hint()));
  }
  HISTOCNN_CUDA(cudaMemsetAsync(persistent_, 0, layout_.total, stream_));
  launch_fill(reinterpret_cast<float*>(persistent(layout_.ones)), 1.0f, shape_.batch, stream_);
  check_launch("fill");

  // The step's tensors, placed by the plan or per tensor through the resource.
  std::vector<ConvWorkspaces> workspaces;
  for (const auto& c : convs_) workspaces.push_back(c.workspace);
  schedule_ = build_cuda_schedule(shape_, workspaces);
  addresses_.assign(schedule_.tensors.size(), nullptr);
  try {
    memory_ = std::make_unique<StepMemory>(schedule_.tensors, int(schedule_.ops.size()), *resource_,
                                           stream_, options.device.planned,
                                           [this](size_t i, void* p) { addresses_[i] = p; });
  } catch (const OutOfMemory& e) {
    resource_->deallocate(persistent_, layout_.total, stream_);
    throw OutOfMemory(e.requested, e.stats, resource_->name(),
                      OutOfMemory::join(e.hint, oom_hint()));
  }

  for (auto& s : stages_) {
    HISTOCNN_CUDA(cudaHostAlloc(
        &s.images,
        sizeof(float) * size_t(shape_.batch) * shape_.channels * shape_.height * shape_.width,
        cudaHostAllocDefault));
    HISTOCNN_CUDA(
        cudaHostAlloc(&s.labels, sizeof(int32_t) * size_t(shape_.batch), cudaHostAllocDefault));
    HISTOCNN_CUDA(cudaHostAlloc(&s.meta, sizeof(BatchMeta), cudaHostAllocDefault));
    HISTOCNN_CUDA(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
  }
  HISTOCNN_CUDA(cudaHostAlloc(&host_results_, 2 * sizeof(double), cudaHostAllocDefault));

  const MemoryPlan& plan = memory_->plan();
  report_.activation_bytes = int64_t(plan.arena_bytes);
  report_.parameter_bytes = int64_t(layout_.total);
  report_.plan = memory_->describe();
  char line[300];
  std::snprintf(line, sizeof line,
                "cuDNN %zu, %s (%.1f GB); step arena %.1f MB (%.1f MB unplanned), %s through %s",
                cudnnGetVersion(), context_->device_name.c_str(), context_->device_bytes / 1e9,
                plan.arena_bytes / 1e6, plan.unplanned_bytes / 1e6,
                options.device.planned ? "planned" : "per tensor", resource_->name().c_str());
  report_.detail = line;
  details_["device"] = context_->device_name;
  details_["cudnn_version"] = cudnnGetVersion();
  details_["precision"] = options.precision;
  details_["cuda_graphs"] = options.cuda_graphs;
}

CudaTrainingStep::~CudaTrainingStep() {
  cudaStreamSynchronize(stream_);
  if (graph_) cudaGraphExecDestroy(graph_);
  for (auto& t : timing_)
    for (cudaEvent_t e : t) cudaEventDestroy(e);
  for (auto& s : stages_) {
    cudaFreeHost(s.images);
    cudaFreeHost(s.labels);
    cudaFreeHost(s.meta);
    if (s.copied) cudaEventDestroy(s.copied);
  }
  cudaFreeHost(host_results_);
  memory_.reset();
  if (persistent_) resource_->deallocate(persistent_, layout_.total, stream_);
  if (own_stream_) cudaStreamDestroy(stream_);
}

std::string CudaTrainingStep::oom_hint() const {
  const size_t persistent = size_t(parameter_count_) * 16 + kCublasWorkspace;
  size_t free_bytes = 0, total = 0;
  cudaMemGetInfo(&free_bytes, &total);
  const int fits =
      largest_batch_that_fits(spec_, shape_.height, shape_.width,
                              free_bytes + (persistent_ ? layout_.total : 0), persistent);
  return "the largest batch that fits the device's free memory is about " + std::to_string(fits) +
         " (histocnn memplan --device cuda --max-batch --budget ...)";
}

void CudaTrainingStep::build_layers() {
  const bool tf32 = options_.precision == "tf32";
  HISTOCNN_CUDA(
      cudnnSetActivationDescriptor(relu_, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0));
  const CudaSchedule plain = build_cuda_schedule(shape_);  // dims before workspaces are known
  convs_.resize(shape_.convs.size());
  for (size_t k = 0; k < shape_.convs.size(); ++k) {
    const ConvShape& s = shape_.convs[k];
    const auto& t = plain.convs[k];
    ConvLayer& c = convs_[k];
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, t.x.n, t.x.c,
                                             t.x.h, t.x.w));
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, t.y.n, t.y.c,
                                             t.y.h, t.y.w));
    HISTOCNN_CUDA(cudnnSetTensor4dDescriptor(c.pooled, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                             t.pooled_dims.n, t.pooled_dims.c, t.pooled_dims.h,
                                             t.pooled_dims.w));
    HISTOCNN_CUDA(
        cudnnSetTensor4dDescriptor(c.bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, s.out_c, 1, 1));
    // PyTorch's OIHW is cuDNN's KCRS.
    HISTOCNN_CUDA(cudnnSetFilter4dDescriptor(c.w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.out_c,
                                             s.in_c, s.kernel, s.kernel));
    HISTOCNN_CUDA(cudnnSetConvolution2dDescriptor(c.conv, s.pad, s.pad, 1, 1, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // fp32: plain FMA math (no TF32), for parity with the CPU backend.
    HISTOCNN_CUDA(
        cudnnSetConvolutionMathType(c.conv, tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    if (s.pool > 1)
      HISTOCNN_CUDA(cudnnSetPooling2dDescriptor(c.pool, CUDNN_POOLING_MAX_DETERMINISTIC,
                                                CUDNN_NOT_PROPAGATE_NAN, s.pool, s.pool, 0, 0,
                                                s.pool, s.pool));
    int n = 0, ch = 0, h = 0, w = 0;
    HISTOCNN_CUDA(cudnnGetConvolution2dForwardOutputDim(c.conv, c.x, c.w, &n, &ch, &h, &w));
    require(n == t.y.n && ch == t.y.c && h == t.y.h && w == t.y.w,
            "cuDNN's convolution output shape disagrees with the schedule (conv" +
                std::to_string(k + 1) + ")");
    const std::string tag = "conv" + std::to_string(k + 1);
    c.w_offset = layout_params_.info(tag + ".weight").offset;
    c.b_offset = layout_params_.info(tag + ".bias").offset;
    choose_algorithms(c, k);
  }
  for (size_t j = 0; j < shape_.denses.size(); ++j) {
    const std::string tag = "fc" + std::to_string(j + 1);
    denses_.push_back(
        {layout_params_.info(tag + ".weight").offset, layout_params_.info(tag + ".bias").offset});
  }
}

void CudaTrainingStep::choose_algorithms(ConvLayer& c, size_t k) {
  cudnnHandle_t h = context_->cudnn;
  const size_t limit = options_.device.workspace_limit;
  constexpr int kMax = 16;
  int returned = 0;
  // Backward algorithms must be deterministic: identical weights across runs
  // and allocators (the self-test checks it).
  std::vector<AlgorithmCandidate> fwd, bwd_data, bwd_filter;
  if (options_.cudnn_benchmark) {
    // Time the algorithms on scratch buffers from the resource (freed after).
    const auto& t = build_cuda_schedule(shape_).convs[k];
    const size_t xb = size_t(t.x.count()) * 4, yb = size_t(t.y.count()) * 4;
    const ConvShape& s = shape_.convs[k];
    const size_t wb = size_t(s.out_c) * s.in_c * s.kernel * s.kernel * 4;
    void* x = resource_->allocate(xb, stream_);
    void* y = resource_->allocate(yb, stream_);
    void* w = resource_->allocate(wb, stream_);
    void* ws = resource_->allocate(limit, stream_);
    cudnnConvolutionFwdAlgoPerf_t pf[kMax];
    cudnnConvolutionBwdDataAlgoPerf_t pd[kMax];
    cudnnConvolutionBwdFilterAlgoPerf_t pw[kMax];
    HISTOCNN_CUDA(cudnnSetStream(h, stream_));
    HISTOCNN_CUDA(cudnnFindConvolutionForwardAlgorithmEx(h, c.x, x, c.w, w, c.conv, c.y, y, kMax,
                                                         &returned, pf, ws, limit));
    fwd = candidates(pf, returned, true);
    HISTOCNN_CUDA(cudnnFindConvolutionBackwardDataAlgorithmEx(h, c.w, w, c.y, y, c.conv, c.x, x,
                                                              kMax, &returned, pd, ws, limit));
    bwd_data = candidates(pd, returned, true);
    HISTOCNN_CUDA(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, c.x, x, c.y, y, c.conv, c.w, w,
                                                                kMax, &returned, pw, ws, limit));
    bwd_filter = candidates(pw, returned, true);
    sync();
    resource_->deallocate(ws, limit, stream_);
    resource_->deallocate(w, wb, stream_);
    resource_->deallocate(y, yb, stream_);
    resource_->deallocate(x, xb, stream_);
  } else {
    cudnnConvolutionFwdAlgoPerf_t pf[kMax];
    cudnnConvolutionBwdDataAlgoPerf_t pd[kMax];
    cudnnConvolutionBwdFilterAlgoPerf_t pw[kMax];
    HISTOCNN_CUDA(
        cudnnGetConvolutionForwardAlgorithm_v7(h, c.x, c.w, c.conv, c.y, kMax, &returned, pf));
    fwd = candidates(pf, returned, false);
    HISTOCNN_CUDA(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, c.w, c.y, c.conv, c.x, kMax, &returned, pd));
    bwd_data = candidates(pd, returned, false);
    HISTOCNN_CUDA(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, c.x, c.y, c.conv, c.w, kMax,
                                                                &returned, pw));
    bwd_filter = candidates(pw, returned, false);
  }
  const int f = choose_algorithm(fwd, limit, true), d = choose_algorithm(bwd_data, limit, true),
            w = choose_algorithm(bwd_filter, limit, true);
  const std::string tag = "conv" + std::to_string(k + 1);
  require(f >= 0 && w >= 0 && (k == 0 || d >= 0),
          tag + ": cuDNN offers no deterministic algorithm within the workspace limit of " +
              std::to_string(limit >> 20) + " MB");
  c.fwd = cudnnConvolutionFwdAlgo_t(f);
  c.bwd_filter = cudnnConvolutionBwdFilterAlgo_t(w);
  if (d >= 0) c.bwd_data = cudnnConvolutionBwdDataAlgo_t(d);
  HISTOCNN_CUDA(cudnnGetConvolutionForwardWorkspaceSize(h, c.x, c.w, c.conv, c.y, c.fwd,
                                                        &c.workspace.forward));
  HISTOCNN_CUDA(cudnnGetConvolutionBackwardFilterWorkspaceSize(
      h, c.x, c.y, c.conv, c.w, c.bwd_filter, &c.workspace.backward_filter));
  if (k > 0)
    HISTOCNN_CUDA(cudnnGetConvolutionBackwardDataWorkspaceSize(h, c.w, c.y, c.conv, c.x, c.bwd_data,
                                                               &c.workspace.backward_data));
  // cuDNN fuses bias + ReLU into the convolution only with this algorithm.
  c.fused = c.fwd == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
  nlohmann::json j = {{"layer", tag},
                      {"forward", fwd_name(f)},
                      {"forward_workspace", c.workspace.forward},
                      {"fused_bias_relu", c.fused},
                      {"backward_filter", bwd_filter_name(w)},
                      {"backward_filter_workspace", c.workspace.backward_filter},
                      {"chosen_by", options_.cudnn_benchmark ? "timed search" : "heuristics"}};
  if (k > 0) {
    j["backward_data"] = bwd_data_name(d);
    j["backward_data_workspace"] = c.workspace.backward_data;
  }
  details_["algorithms"].push_back(j);
}

// ---- staging and execution ------------------------------------------------

void CudaTrainingStep::stage(const float* images, const int32_t* labels, int count,
                             const BatchSlice& slice) {
  require(count >= 0 && count <= shape_.batch && (count > 0 || slice.global_count > 0),
          "batch of " + std::to_string(count) + " images does not fit the compiled batch of " +
              std::to_string(shape_.batch));
  for (int i = 0; labels && i < count; ++i)
    require(labels[i] == 0 || labels[i] == 1,
            "label " + std::to_string(labels[i]) + " is not 0 (benign) or 1 (malignant)");
  stage_ ^= 1;
  Stage& s = stages_[stage_];
  HISTOCNN_CUDA(cudaEventSynchronize(s.copied));  // its previous batch has left (long ago)
  const size_t image_floats = size_t(shape_.channels) * shape_.height * shape_.width;
  if (count > 0) std::memcpy(s.images, images, sizeof(float) * image_floats * size_t(count));
  if (count < shape_.batch)
    std::memset(s.images + image_floats * size_t(count), 0,
                sizeof(float) * image_floats * size_t(shape_.batch - count));
  if (labels) std::memcpy(s.labels, labels, sizeof(int32_t) * size_t(count));
  *s.meta = BatchMeta{count, slice.global_count, slice.first_row};
}

void CudaTrainingStep::gemm(const GemmCall& g, const float* a, const float* b, float* c) {
  const float one = 1, zero = 0;
  HISTOCNN_CUDA(cublasSgemm(context_->cublas, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                            g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.m, g.n, g.k, &one, a, g.lda, b,
                            g.ldb, &zero, c, g.ldc));
}

void CudaTrainingStep::run_op(const ScheduledOp& op, Mode mode, bool training, int slot) {
  cudnnHandle_t h = context_->cudnn;
  const float one = 1, zero = 0;
  const int n = shape_.batch;
  auto* step = reinterpret_cast<int64_t*>(persistent(layout_.step));
  switch (op.kind) {
    case OpKind::kInput: {
      Stage& s = stages_[stage_];
      HISTOCNN_CUDA(cudaMemcpyAsync(
          tensor(schedule_.input), s.images,
          sizeof(float) * size_t(schedule_.tensors[size_t(schedule_.input)].bytes / 4),
          cudaMemcpyHostToDevice, stream_));
      HISTOCNN_CUDA(cudaMemcpyAsync(persistent(layout_.labels), s.labels,
                                    sizeof(int32_t) * size_t(n), cudaMemcpyHostToDevice, stream_));
      HISTOCNN_CUDA(
          cudaMemcpyAsync(meta(), s.meta, sizeof(BatchMeta), cudaMemcpyHostToDevice, stream_));
      HISTOCNN_CUDA(cudaEventRecord(s.copied, stream_));
      return;
    }
    case OpKind::kConvForward: {
      ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      void* ws = t.ws_forward >= 0 ? tensor(t.ws_forward) : nullptr;
      if (c.fused) {
        HISTOCNN_CUDA(cudnnConvolutionBiasActivationForward(
            h, &one, c.x, tensor(t.src), c.w, params() + c.w_offset, c.conv, c.fwd, ws,
            c.workspace.forward, &zero, c.y, tensor(t.conv_out), c.bias, params() + c.b_offset,
            relu_, c.y, tensor(t.conv_out)));
      } else {
        HISTOCNN_CUDA(cudnnConvolutionForward(h, &one, c.x, tensor(t.src), c.w,
                                              params() + c.w_offset, c.conv, c.fwd, ws,
                                              c.workspace.forward, &zero, c.y, tensor(t.conv_out)));
        HISTOCNN_CUDA(
            cudnnAddTensor(h, &one, c.bias, params() + c.b_offset, &one, c.y, tensor(t.conv_out)));
        HISTOCNN_CUDA(cudnnActivationForward(h, relu_, &one, c.y, tensor(t.conv_out), &zero, c.y,
                                             tensor(t.conv_out)));
      }
      return;
    }
    case OpKind::kPoolForward: {
      ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      HISTOCNN_CUDA(cudnnPoolingForward(h, c.pool, &one, c.y, tensor(t.conv_out), &zero, c.pooled,
                                        tensor(t.pooled)));
      return;
    }
    case OpKind::kDenseForward: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      gemm(dense_forward_gemm(n, d.in, d.outputs), params() + denses_[size_t(op.layer)].w_offset,
           tensor(d.src), tensor(d.out));
      return;
    }
    case OpKind::kDenseActivation: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      const DenseShape& s = shape_.denses[size_t(op.layer)];
      launch_dense_activation(tensor(d.out), params() + denses_[size_t(op.layer)].b_offset, n,
                              d.outputs, s.relu, training ? s.dropout_after : 0.0f,
                              options_.dropout_seed, step, meta(), op.layer, stream_);
      return;
    }
    case OpKind::kLoss: {
      const bool predict = mode == Mode::kPredict;
      launch_softmax_xent(
          tensor(schedule_.logits), predict ? nullptr : tensor(schedule_.d_logits),
          reinterpret_cast<float*>(persistent(layout_.probs)),
          predict ? nullptr : reinterpret_cast<int32_t*>(persistent(layout_.labels)), meta(), n,
          !predict, reinterpret_cast<double*>(persistent(layout_.loss)) + slot,
          reinterpret_cast<int*>(persistent(layout_.correct)) + slot, stream_);
      return;
    }
    case OpKind::kDenseActivationBackward: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      const DenseShape& s = shape_.denses[size_t(op.layer)];
      launch_dense_activation_backward(tensor(d.d_out), tensor(d.out), n, d.outputs,
                                       training ? s.dropout_after : 0.0f, options_.dropout_seed,
                                       step, meta(), op.layer, stream_);
      return;
    }
    case OpKind::kDenseBackwardWeights: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      const DenseLayer& l = denses_[size_t(op.layer)];
      gemm(dense_backward_weight_gemm(n, d.in, d.outputs), tensor(d.src), tensor(d.d_out),
           grads() + l.w_offset);
      // db[o] = sum over rows of dY: dY^T[out, N] times ones[N].
      HISTOCNN_CUDA(cublasSgemv(context_->cublas, CUBLAS_OP_N, d.outputs, n, &one, tensor(d.d_out),
                                d.outputs, reinterpret_cast<float*>(persistent(layout_.ones)), 1,
                                &zero, grads() + l.b_offset, 1));
      return;
    }
    case OpKind::kDenseBackwardData: {
      const auto& d = schedule_.denses[size_t(op.layer)];
      gemm(dense_backward_data_gemm(n, d.in, d.outputs),
           params() + denses_[size_t(op.layer)].w_offset, tensor(d.d_out), tensor(d.d_src));
      return;
    }
    case OpKind::kReluBackwardPooled: {
      // ReLU' on the pooled map (see the CPU backend: exact, 4x less work).
      ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      HISTOCNN_CUDA(cudnnActivationBackward(h, relu_, &one, c.pooled, tensor(t.pooled), c.pooled,
                                            tensor(t.d_pooled), c.pooled, tensor(t.pooled), &zero,
                                            c.pooled, tensor(t.d_pooled)));
      return;
    }
    case OpKind::kPoolBackward: {
      ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      HISTOCNN_CUDA(cudnnPoolingBackward(h, c.pool, &one, c.pooled, tensor(t.pooled), c.pooled,
                                         tensor(t.d_pooled), c.y, tensor(t.conv_out), &zero, c.y,
                                         tensor(t.d_conv_out)));
      return;
    }
    case OpKind::kConvBackwardFilter: {
      ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      void* ws = t.ws_backward_filter >= 0 ? tensor(t.ws_backward_filter) : nullptr;
      HISTOCNN_CUDA(cudnnConvolutionBackwardFilter(
          h, &one, c.x, tensor(t.src), c.y, tensor(t.d_conv_out), c.conv, c.bwd_filter, ws,
          c.workspace.backward_filter, &zero, c.w, grads() + c.w_offset));
      HISTOCNN_CUDA(cudnnConvolutionBackwardBias(h, &one, c.y, tensor(t.d_conv_out), &zero, c.bias,
                                                 grads() + c.b_offset));
      return;
    }
    case OpKind::kConvBackwardData: {
      ConvLayer& c = convs_[size_t(op.layer)];
      const auto& t = schedule_.convs[size_t(op.layer)];
      const auto& prev = schedule_.convs[size_t(op.layer) - 1];
      void* ws = t.ws_backward_data >= 0 ? tensor(t.ws_backward_data) : nullptr;
      HISTOCNN_CUDA(cudnnConvolutionBackwardData(
          h, &one, c.w, params() + c.w_offset, c.y, tensor(t.d_conv_out), c.conv, c.bwd_data, ws,
          c.workspace.backward_data, &zero, c.x, tensor(prev.d_pooled)));
      return;
    }
  }
}

void CudaTrainingStep::update() {
  launch_adam_prepare(reinterpret_cast<int64_t*>(persistent(layout_.step)),
                      options_.adam.learning_rate, options_.adam.beta1, options_.adam.beta2,
                      options_.adam.epsilon,
                      reinterpret_cast<elementwise::AdamStep*>(persistent(layout_.adam)), stream_);
  launch_adam(params(), grads(), moment1(), moment2(), parameter_count_,
              reinterpret_cast<const elementwise::AdamStep*>(persistent(layout_.adam)), stream_);
}

// Runs the schedule: every op in train/gradients mode; forward and loss in
// predict mode (the rest only releases memory).
void CudaTrainingStep::bind_handles() {
  // The handles are shared by the backend's steps: point them at this one.
  HISTOCNN_CUDA(cudnnSetStream(context_->cudnn, stream_));
  HISTOCNN_CUDA(cublasSetStream(context_->cublas, stream_));
  HISTOCNN_CUDA(cublasSetWorkspace(context_->cublas, persistent(layout_.cublas), kCublasWorkspace));
  HISTOCNN_CUDA(cublasSetMathMode(context_->cublas, options_.precision == "tf32"
                                                        ? CUBLAS_TF32_TENSOR_OP_MATH
                                                        : CUBLAS_PEDANTIC_MATH));
}

void CudaTrainingStep::run(Mode mode, bool training, int slot) {
  bind_handles();
  const int last = mode == Mode::kPredict ? schedule_.loss_op : int(schedule_.ops.size()) - 1;
  int k = 0;
  try {
    for (; k < int(schedule_.ops.size()); ++k) {
      if (k <= last) {
        memory_->begin_op(k);
        run_op(schedule_.ops[size_t(k)], mode, training, slot);
      }
      memory_->end_op(k);
    }
    check_launch("training step");
  } catch (const OutOfMemory& e) {
    memory_->abandon_step();
    throw OutOfMemory(e.requested, e.stats, resource_->name(),
                      OutOfMemory::join(e.hint, oom_hint()));
  } catch (...) {
    memory_->abandon_step();
    throw;
  }
}

StepResult CudaTrainingStep::train_slice(const float* images, const int32_t* labels, int count,
                                         const BatchSlice& slice) {
  stage(images, labels, count, slice);
  bind_handles();
  if (timed_ == timing_.size()) {
    std::array<cudaEvent_t, 4> events{};
    for (auto& e : events) HISTOCNN_CUDA(cudaEventCreate(&e));
    timing_.push_back(events);
  }
  auto& ev = timing_[timed_++];
  if (graph_) {
    // Inputs go in outside the graph (the staging buffer alternates).
    run_op(schedule_.ops[0], Mode::kTrain, true, 0);
    HISTOCNN_CUDA(cudaEventRecord(ev[0], stream_));
    HISTOCNN_CUDA(cudaGraphLaunch(graph_, stream_));
    HISTOCNN_CUDA(cudaEventRecord(ev[1], stream_));
    HISTOCNN_CUDA(cudaEventRecord(ev[2], stream_));
    HISTOCNN_CUDA(cudaEventRecord(ev[3], stream_));
  } else if (options_.cuda_graphs && eager_steps_ >= 1) {
    // Capture once the first eager step has loaded every kernel: the whole
    // step after the input copy, with its update.
    run_op(schedule_.ops[0], Mode::kTrain, true, 0);
    HISTOCNN_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    for (size_t k = 1; k < schedule_.ops.size(); ++k)
      run_op(schedule_.ops[k], Mode::kTrain, true, 0);
    reduce_gradients();
    update();
    cudaGraph_t graph = nullptr;
    HISTOCNN_CUDA(cudaStreamEndCapture(stream_, &graph));
    HISTOCNN_CUDA(cudaGraphInstantiate(&graph_, graph, 0));
    HISTOCNN_CUDA(cudaGraphDestroy(graph));
    HISTOCNN_CUDA(cudaEventRecord(ev[0], stream_));
    HISTOCNN_CUDA(cudaGraphLaunch(graph_, stream_));
    HISTOCNN_CUDA(cudaEventRecord(ev[1], stream_));
    HISTOCNN_CUDA(cudaEventRecord(ev[2], stream_));
    HISTOCNN_CUDA(cudaEventRecord(ev[3], stream_));
  } else {
    HISTOCNN_CUDA(cudaEventRecord(ev[0], stream_));
    run(Mode::kTrain, true, 0);  // forward, loss and backward
    reduce_gradients();          // data parallelism: NCCL on this stream
    HISTOCNN_CUDA(cudaEventRecord(ev[2], stream_));
    update();
    HISTOCNN_CUDA(cudaEventRecord(ev[3], stream_));
    ++eager_steps_;
  }
  check_launch("training step");
  return {};
}

void CudaTrainingStep::collect_profile() {
  for (size_t i = 0; i < timed_; ++i) {
    float total = 0, update_ms = 0;
    HISTOCNN_CUDA(cudaEventElapsedTime(&total, timing_[i][0], timing_[i][3]));
    HISTOCNN_CUDA(cudaEventElapsedTime(&update_ms, timing_[i][2], timing_[i][3]));
    profile_.forward += (total - update_ms) / 1e3;  // forward + backward (one CUDA phase)
    profile_.update += update_ms / 1e3;
    profile_.steps++;
  }
  timed_ = 0;
}

StepResult CudaTrainingStep::take_results() {
  auto* loss = reinterpret_cast<double*>(persistent(layout_.loss));
  auto* correct = reinterpret_cast<int*>(persistent(layout_.correct));
  HISTOCNN_CUDA(
      cudaMemcpyAsync(&host_results_[0], loss, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  HISTOCNN_CUDA(
      cudaMemcpyAsync(&host_results_[1], correct, sizeof(int), cudaMemcpyDeviceToHost, stream_));
  HISTOCNN_CUDA(cudaMemsetAsync(loss, 0, sizeof(double), stream_));
  HISTOCNN_CUDA(cudaMemsetAsync(correct, 0, sizeof(int), stream_));
  sync();
  collect_profile();
  StepResult r;
  r.loss_sum = host_results_[0];
  std::memcpy(&r.correct, &host_results_[1], sizeof(int));
  return r;
}

void CudaTrainingStep::predict(const float* images, int count, float* probabilities) {
  stage(images, nullptr, count);
  run(Mode::kPredict, false, 1);
  HISTOCNN_CUDA(cudaMemcpyAsync(probabilities, persistent(layout_.probs),
                                sizeof(float) * 2 * size_t(count), cudaMemcpyDeviceToHost,
                                stream_));
  sync();
}

StepResult CudaTrainingStep::gradients(const float* images, const int32_t* labels, int count,
                                       bool training_mode, Parameters* grads_out) {
  stage(images, labels, count);
  auto* loss = reinterpret_cast<double*>(persistent(layout_.loss)) + 1;
  auto* correct = reinterpret_cast<int*>(persistent(layout_.correct)) + 1;
  HISTOCNN_CUDA(cudaMemsetAsync(loss, 0, sizeof(double), stream_));
  HISTOCNN_CUDA(cudaMemsetAsync(correct, 0, sizeof(int), stream_));
  run(Mode::kGradients, training_mode, 1);
  double host_loss = 0;
  int host_correct = 0;
  HISTOCNN_CUDA(cudaMemcpyAsync(&host_loss, loss, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  HISTOCNN_CUDA(
      cudaMemcpyAsync(&host_correct, correct, sizeof(int), cudaMemcpyDeviceToHost, stream_));
  if (grads_out) {
    *grads_out = layout_params_;
    HISTOCNN_CUDA(cudaMemcpyAsync(grads_out->values.data(), grads(),
                                  sizeof(float) * size_t(parameter_count_), cudaMemcpyDeviceToHost,
                                  stream_));
  }
  sync();
  return {host_loss, host_correct};
}

void CudaTrainingStep::set_parameters(const Parameters& p) {
  require(int64_t(p.values.size()) == parameter_count_, "parameters do not match the model");
  HISTOCNN_CUDA(cudaMemcpyAsync(params(), p.values.data(), sizeof(float) * p.values.size(),
                                cudaMemcpyHostToDevice, stream_));
  sync();
}

Parameters CudaTrainingStep::parameters() const {
  Parameters p = layout_params_;
  HISTOCNN_CUDA(cudaMemcpyAsync(p.values.data(), params(), sizeof(float) * p.values.size(),
                                cudaMemcpyDeviceToHost, stream_));
  sync();
  return p;
}

void CudaTrainingStep::set_optimizer_state(const Parameters& m, const Parameters& v, int64_t step) {
  require(
      int64_t(m.values.size()) == parameter_count_ && int64_t(v.values.size()) == parameter_count_,
      "optimizer state does not match the model");
  HISTOCNN_CUDA(cudaMemcpyAsync(moment1(), m.values.data(), sizeof(float) * m.values.size(),
                                cudaMemcpyHostToDevice, stream_));
  HISTOCNN_CUDA(cudaMemcpyAsync(moment2(), v.values.data(), sizeof(float) * v.values.size(),
                                cudaMemcpyHostToDevice, stream_));
  HISTOCNN_CUDA(cudaMemcpyAsync(persistent(layout_.step), &step, sizeof(step),
                                cudaMemcpyHostToDevice, stream_));
  sync();
}

void CudaTrainingStep::optimizer_state(Parameters* m, Parameters* v, int64_t* step) const {
  *m = layout_params_;
  *v = layout_params_;
  HISTOCNN_CUDA(cudaMemcpyAsync(m->values.data(), moment1(), sizeof(float) * m->values.size(),
                                cudaMemcpyDeviceToHost, stream_));
  HISTOCNN_CUDA(cudaMemcpyAsync(v->values.data(), moment2(), sizeof(float) * v->values.size(),
                                cudaMemcpyDeviceToHost, stream_));
  HISTOCNN_CUDA(cudaMemcpyAsync(step, persistent(layout_.step), sizeof(int64_t),
                                cudaMemcpyDeviceToHost, stream_));
  sync();
}

MemoryReport CudaTrainingStep::memory() const {
  MemoryReport r = report_;
  r.allocator_calls = memory_->allocator_calls() + 1;  // + the persistent block
  return r;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() : context_(std::make_shared<Context>()) {}
  std::string name() const override { return "cuda"; }
  std::unique_ptr<TrainingStep> compile(const ModelSpec& spec, const NetworkShape& shape,
                                        const StepOptions& options) override {
    return std::make_unique<CudaTrainingStep>(context_, spec, shape, options);
  }

 private:
  std::shared_ptr<Context> context_;
};

}  // namespace
}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend() {
  return std::make_unique<cuda::CudaBackend>();
}

}  // namespace histocnn
