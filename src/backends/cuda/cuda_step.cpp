// The CUDA training step: construction, staging, the public calls. See
// cuda_step.h for the memory placement and the files of the step.
#include "backends/cuda/cuda_step.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "backends/cuda/cuda_backend.h"
#include "core/error.h"
#include "core/parallel_copy.h"
#include "memory/cuda_resources.h"

namespace histocnn {
namespace cuda {

// Threads copying a batch into pinned staging: enough for a few times one
// thread's bandwidth, few enough to leave the loader's workers their cores.
constexpr int kStagingThreads = 4;

// bf16 tensor-core convolutions need Ampere (sm_80) or newer.
std::string precision_unsupported_on(const Context& context, const std::string& precision) {
  if (precision != "bf16") return "";
  int major = 0, minor = 0;
  HISTOCNN_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, context.device));
  HISTOCNN_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, context.device));
  if (major >= 8) return "";
  return "--precision bf16 on CUDA needs compute capability 8.0 or newer; " + context.device_name +
         " is " + std::to_string(major) + "." + std::to_string(minor) + " (use fp32)";
}

CudaTrainingStep::CudaTrainingStep(std::shared_ptr<Context> context, const ModelSpec& spec,
                                   const NetworkShape& shape, const StepOptions& options)
    : context_(std::move(context)), spec_(spec), shape_(shape), options_(options) {
  require(options.precision == "fp32" || options.precision == "tf32" || options.precision == "bf16",
          "--precision " + options.precision +
              ": the CUDA backend trains in fp32 (default), tf32 or bf16");
  const std::string unsupported = precision_unsupported_on(*context_, options.precision);
  require(unsupported.empty(), unsupported);
  if (options.channels_last) {
    const std::string why = channels_last_unsupported(shape);
    require(why.empty(), "--channels-last: " + why);
  }
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
  check_fits();
  build_layers();

  lay_out_persistent_block();
  allocate_persistent_block();
  plan_step_tensors();
  allocate_stages();
  input_source_ = std::make_shared<PinnedHostSource>(context_->device);
  describe_memory();
}

// The persistent block: parameters, gradients, Adam's moments (and bf16
// copies), the step counter, loss slots, labels, probabilities, cuBLAS's
// workspace, batch-norm statistics. Offsets only; allocated next.
void CudaTrainingStep::lay_out_persistent_block() {
  auto reserve = [&](size_t bytes) {
    const size_t at = layout_.total;
    layout_.total += align_to(bytes, kAlignment);
    return at;
  };
  layout_.params = reserve(size_t(parameter_count_) * 4 * sizeof(float));
  if (bf16_) layout_.shadows = reserve(size_t(parameter_count_) * 2 * sizeof(Bf16));
  if (channels_last_) {
    int64_t at = 0;
    for (size_t k = 0; k < convs_.size(); ++k) {
      const ConvShape& s = shape_.convs[k];
      convs_[k].filter_offset = at;
      at += int64_t(s.out_c) * s.in_c * s.kernel * s.kernel;
    }
    const size_t bytes = size_t(at) * (bf16_ ? sizeof(Bf16) : sizeof(float));
    layout_.filters = reserve(bytes);
    layout_.filter_grads = reserve(bytes);
  }
  layout_.step = reserve(sizeof(int64_t));
  layout_.adam = reserve(sizeof(elementwise::AdamStep));
  layout_.learning_rate = reserve(sizeof(float));
  layout_.loss = reserve(2 * sizeof(double));  // slot 0: training, slot 1: one-off calls
  layout_.correct = reserve(2 * sizeof(int));
  layout_.labels = reserve(size_t(shape_.batch) * sizeof(int32_t));
  layout_.meta = reserve(sizeof(BatchMeta));
  layout_.probs = reserve(size_t(shape_.batch) * size_t(shape_.classes()) * sizeof(float));
  layout_.ones = reserve(size_t(shape_.batch) * sizeof(float));
  layout_.landing = reserve(landing_bytes(shape_));
  layout_.cublas = reserve(kCublasWorkspace);
  for (ConvLayer& c : convs_) {
    if (!c.batch_norm) continue;
    const size_t channel_bytes = size_t(shape_.convs[size_t(&c - convs_.data())].out_c) * 4;
    c.running_mean = reserve(channel_bytes);
    c.running_var = reserve(channel_bytes);
    c.saved_mean = reserve(channel_bytes);
    c.saved_inv_std = reserve(channel_bytes);
  }
}

// Allocated once, zeroed, and the few values that do not start at zero.
void CudaTrainingStep::allocate_persistent_block() {
  try {
    persistent_ = resource_->allocate(layout_.total, stream_);
  } catch (const OutOfMemory& e) {
    throw OutOfMemory(e.requested, e.stats, resource_->name(),
                      OutOfMemory::join(e.hint, oom_hint()));
  }
  HISTOCNN_CUDA(cudaMemsetAsync(persistent_, 0, layout_.total, stream_));
  launch_fill(reinterpret_cast<float*>(persistent(layout_.ones)), 1.0f, shape_.batch, stream_);
  check_launch("fill");
  set_learning_rate(options_.adam.learning_rate);
  for (size_t k = 0; k < convs_.size(); ++k)  // running variance starts at 1 (PyTorch)
    if (convs_[k].batch_norm)
      launch_fill(reinterpret_cast<float*>(persistent(convs_[k].running_var)), 1.0f,
                  shape_.convs[k].out_c, stream_);
  check_launch("batch-norm statistics");
}

// The step's tensors, placed by the plan or per tensor through the resource.
void CudaTrainingStep::plan_step_tensors() {
  std::vector<ConvWorkspaces> workspaces;
  for (const auto& c : convs_) workspaces.push_back(c.workspace);
  schedule_ = build_cuda_schedule(shape_, workspaces, format(), conv_routes());
  addresses_.assign(schedule_.tensors.size(), nullptr);
  try {
    memory_ = std::make_unique<StepMemory>(schedule_.tensors, int(schedule_.ops.size()), *resource_,
                                           stream_, options_.device.planned,
                                           [this](size_t i, void* p) { addresses_[i] = p; });
  } catch (const OutOfMemory& e) {
    resource_->deallocate(persistent_, layout_.total, stream_);
    throw OutOfMemory(e.requested, e.stats, resource_->name(),
                      OutOfMemory::join(e.hint, oom_hint()));
  }
}

// Pinned host buffers for the batches in flight, and for the results.
void CudaTrainingStep::allocate_stages() {
  for (auto& s : stages_) {
    HISTOCNN_CUDA(cudaHostAlloc(&s.images, landing_bytes(shape_), cudaHostAllocDefault));
    HISTOCNN_CUDA(
        cudaHostAlloc(&s.labels, sizeof(int32_t) * size_t(shape_.batch), cudaHostAllocDefault));
    HISTOCNN_CUDA(cudaHostAlloc(&s.meta, sizeof(BatchMeta), cudaHostAllocDefault));
    HISTOCNN_CUDA(cudaEventCreateWithFlags(&s.sent, cudaEventDisableTiming));
    HISTOCNN_CUDA(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
  }
  HISTOCNN_CUDA(cudaHostAlloc(&host_results_, 2 * sizeof(double), cudaHostAllocDefault));
  HISTOCNN_CUDA(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  HISTOCNN_CUDA(cudaEventCreateWithFlags(&landing_read_, cudaEventDisableTiming));
  // The persistent block (the landing buffer in it) was allocated and zeroed
  // in stream_'s order; the copy stream writes it from the first batch on.
  sync();
}

void CudaTrainingStep::describe_memory() {
  const MemoryPlan& plan = memory_->plan();
  report_.activation_bytes = int64_t(plan.arena_bytes);
  report_.parameter_bytes = int64_t(layout_.total);
  report_.plan = memory_->describe();
  char line[300];
  std::snprintf(line, sizeof line,
                "cuDNN %zu, %s (%.1f GB); step arena %.1f MB (%.1f MB unplanned), %s through %s",
                cudnnGetVersion(), context_->device_name.c_str(), context_->device_bytes / 1e9,
                plan.arena_bytes / 1e6, plan.unplanned_bytes / 1e6,
                options_.device.planned ? "planned" : "per tensor", resource_->name().c_str());
  report_.detail = line;
  details_["device"] = context_->device_name;
  details_["cudnn_version"] = cudnnGetVersion();
  details_["precision"] = options_.precision;
  details_["cuda_graphs"] = options_.cuda_graphs;
  details_["channels_last"] = channels_last_;
}

CudaTrainingStep::~CudaTrainingStep() {
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  cudaStreamSynchronize(stream_);
  destroy_graphs();
  for (auto& t : timing_) {
    for (cudaEvent_t e : t.phase) cudaEventDestroy(e);
    for (cudaEvent_t e : t.ops) cudaEventDestroy(e);
  }
  for (auto& s : stages_) {
    cudaFreeHost(s.images);
    cudaFreeHost(s.labels);
    cudaFreeHost(s.meta);
    if (s.sent) cudaEventDestroy(s.sent);
    if (s.copied) cudaEventDestroy(s.copied);
  }
  cudaFreeHost(host_results_);
  if (landing_read_) cudaEventDestroy(landing_read_);
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  memory_.reset();
  if (persistent_) resource_->deallocate(persistent_, layout_.total, stream_);
  if (own_stream_) cudaStreamDestroy(stream_);
}

// Before any cuDNN descriptor or algorithm search: the planned step (without
// the workspaces, chosen later) must fit the resource — probed with one
// allocation, so a --gpu-mem-limit, a fixed pool or the device itself answers
// — and every tensor must fit cuDNN's 32-bit element count. Either failure is
// one sentence with the numbers and the largest batch that would work.
void CudaTrainingStep::check_fits() {
  auto need = [&](int batch) {
    return planned_step_bytes(spec_, batch, shape_.height, shape_.width, format());
  };
  auto fits = [&](int batch) {
    const size_t bytes = need(batch);
    try {
      resource_->deallocate(resource_->allocate(bytes, stream_), bytes, stream_);
      return true;
    } catch (const OutOfMemory&) {
      return false;
    }
  };
  const size_t bytes = need(shape_.batch);
  try {
    resource_->deallocate(resource_->allocate(bytes, stream_), bytes, stream_);
  } catch (const OutOfMemory& e) {
    int fit = 0, fail = shape_.batch;  // fits(fit) (0: trivially), !fits(fail)
    while (fail - fit > 1) {
      const int mid = fit + (fail - fit) / 2;
      (fits(mid) ? fit : fail) = mid;
    }
    char hint[240];
    std::snprintf(hint, sizeof hint,
                  "batch %d at %dx%d needs %.1f MB before cuDNN's workspaces; the largest batch "
                  "that fits is about %d (histocnn memplan --device cuda --max-batch --budget ...)",
                  shape_.batch, shape_.height, shape_.width, bytes / 1e6, fit);
    throw OutOfMemory(e.requested, e.stats, resource_->name(), OutOfMemory::join(e.hint, hint));
  }
  const LargestTensor largest = largest_tensor(build_cuda_schedule(shape_));
  if (largest.elements > kCudnnMaxElements)
    fail("batch " + std::to_string(shape_.batch) + " at " + std::to_string(shape_.height) + "x" +
         std::to_string(shape_.width) + ": " + largest.name + " would hold " +
         std::to_string(largest.elements) +
         " elements, more than cuDNN's 32-bit limit (2^31 - 1); the largest batch within it is " +
         std::to_string(largest_batch_within_element_limit(spec_, shape_.height, shape_.width)) +
         " (--batch), or split the batch over processes (mpirun -np N)");
}

std::string CudaTrainingStep::oom_hint() const {
  size_t free_bytes = 0, total = 0;
  cudaMemGetInfo(&free_bytes, &total);
  const int fits = largest_batch_that_fits(
      spec_, shape_.height, shape_.width, free_bytes + (persistent_ ? layout_.total : 0), format());
  return "the largest batch that fits the device's free memory is about " + std::to_string(fits) +
         " (histocnn memplan --device cuda --max-batch --budget ...)";
}

CudaTrainingStep::InputParts CudaTrainingStep::float_parts(const float* images, int count) const {
  InputParts parts;
  parts.data[0] = images;
  parts.bytes[0] = sizeof(float) * size_t(count) * shape_.channels * shape_.height * shape_.width;
  return parts;
}

CudaTrainingStep::InputParts CudaTrainingStep::byte_parts(const ByteImages& images,
                                                          int count) const {
  const LandingLayout l = landing_layout(shape_);
  InputParts parts;
  parts.byte_images = true;
  parts.data[0] = images.pixels;
  parts.bytes[0] = size_t(count) * 3 * shape_.height * shape_.width;
  parts.data[1] = images.tables;
  parts.bytes[1] = size_t(count) * kByteTablesPerImage * sizeof(float);
  parts.offset[1] = l.tables_offset;
  return parts;
}

void CudaTrainingStep::stage(InputParts parts, const int32_t* labels, int count,
                             const BatchSlice& slice) {
  require(count >= 0 && count <= shape_.batch && (count > 0 || slice.global_count > 0),
          "batch of " + std::to_string(count) + " images does not fit the compiled batch of " +
              std::to_string(shape_.batch));
  for (int i = 0; labels && i < count; ++i) check_label(labels[i], shape_.classes());
  stage_ ^= 1;
  Stage& s = stages_[stage_];
  HISTOCNN_CUDA(cudaEventSynchronize(s.sent));  // its previous batch has left (long ago)
  HISTOCNN_CUDA(cudaEventSynchronize(s.copied));
  bool direct = count > 0;
  for (int k = 0; k < 2; ++k)
    direct = direct && (parts.bytes[k] == 0 || input_source_->holds(parts.data[k], parts.bytes[k]));
  for (int k = 0; !direct && k < 2; ++k) {
    if (parts.bytes[k] == 0) continue;
    // On the training thread, so split: one thread's copy of a 200-px batch
    // of 150 (72 MB as floats) is about as long as the GPU's bf16 step.
    parallel_copy(s.images + parts.offset[k], parts.data[k], parts.bytes[k], kStagingThreads);
    parts.data[k] = s.images + parts.offset[k];
  }
  s.byte_images = parts.byte_images;
  s.count = count;
  if (labels) std::memcpy(s.labels, labels, sizeof(int32_t) * size_t(count));
  *s.meta = BatchMeta{count, slice.global_count, slice.first_row};
  send(s, parts);
  batches_as_bytes_ += parts.byte_images;
  if (!direct) {
    ++batches_staged_;
    return;
  }
  // The caller may refill its buffers once train() returns: wait for the DMA
  // (a few ms at PCIe speed, while the GPU computes the previous batch).
  HISTOCNN_CUDA(cudaEventSynchronize(s.sent));
  ++batches_direct_;
}

// The parts to the landing buffer on the copy stream, once the previous
// batch's input op has read it (an event not yet recorded: no wait). The
// step's own stream is not touched: it may still be computing.
void CudaTrainingStep::send(const Stage& s, const InputParts& parts) {
  char* landing = persistent(layout_.landing);
  HISTOCNN_CUDA(cudaStreamWaitEvent(copy_stream_, landing_read_, 0));
  for (int k = 0; k < 2; ++k)
    if (parts.bytes[k] > 0)
      HISTOCNN_CUDA(cudaMemcpyAsync(landing + parts.offset[k], parts.data[k], parts.bytes[k],
                                    cudaMemcpyHostToDevice, copy_stream_));
  const size_t float_bytes = landing_layout(shape_).float_bytes;
  if (!parts.byte_images && parts.bytes[0] < float_bytes)
    HISTOCNN_CUDA(
        cudaMemsetAsync(landing + parts.bytes[0], 0, float_bytes - parts.bytes[0], copy_stream_));
  HISTOCNN_CUDA(cudaEventRecord(s.sent, copy_stream_));
}

nlohmann::json CudaTrainingStep::details() const {
  nlohmann::json j = details_;
  j["input_batches"] = {{"page_locked_buffers", input_source_->pinned_buffers()},
                        {"page_lock_refused", input_source_->refused_buffers()},
                        {"sent_by_dma_from_the_loader", batches_direct_},
                        {"copied_to_staging_first", batches_staged_},
                        {"sent_as_bytes", batches_as_bytes_}};
  return j;
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
  predict_features(images, count, probabilities, nullptr);
}

void CudaTrainingStep::predict_features(const float* images, int count, float* probabilities,
                                        float* features) {
  stage(images, nullptr, count);
  predict_staged(count, probabilities, features);
}

void CudaTrainingStep::predict_bytes(const ByteImages& images, int count, float* probabilities,
                                     float* features) {
  check_byte_images(shape_);
  stage(byte_parts(images, count), nullptr, count);
  predict_staged(count, probabilities, features);
}

void CudaTrainingStep::predict_staged(int count, float* probabilities, float* features) {
  run(Mode::kPredict, false, 1, nullptr, features, count);
  HISTOCNN_CUDA(cudaMemcpyAsync(probabilities, persistent(layout_.probs),
                                sizeof(float) * size_t(shape_.classes()) * size_t(count),
                                cudaMemcpyDeviceToHost, stream_));
  sync();
}

StepResult CudaTrainingStep::gradients(const float* images, const int32_t* labels, int count,
                                       bool training_mode, Parameters* grads_out) {
  require(training_mode || !shape_.has_batch_norm(), "batch norm: gradients need training mode");
  count_batch_norm_rows(count);
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
  if (bf16_) launch_to_bf16(params(), param_shadow(), parameter_count_, stream_);
  refresh_filters();
  check_launch("copies of the parameters");
  sync();
}

Parameters CudaTrainingStep::parameters() const {
  Parameters p = layout_params_;
  HISTOCNN_CUDA(cudaMemcpyAsync(p.values.data(), params(), sizeof(float) * p.values.size(),
                                cudaMemcpyDeviceToHost, stream_));
  sync();
  return p;
}

Buffers CudaTrainingStep::buffers() const {
  Buffers b = Buffers::initial(shape_);
  for (size_t k = 0; k < convs_.size(); ++k) {
    if (!convs_[k].batch_norm) continue;
    const size_t bytes = sizeof(float) * size_t(shape_.convs[k].out_c);
    HISTOCNN_CUDA(cudaMemcpyAsync(b.running_mean(int(k)), persistent(convs_[k].running_mean), bytes,
                                  cudaMemcpyDeviceToHost, stream_));
    HISTOCNN_CUDA(cudaMemcpyAsync(b.running_var(int(k)), persistent(convs_[k].running_var), bytes,
                                  cudaMemcpyDeviceToHost, stream_));
  }
  sync();
  b.batches_tracked = batches_tracked_;
  return b;
}

void CudaTrainingStep::set_buffers(const Buffers& given) {
  Buffers b = given;  // its own copy: the pageable copies read it after return
  require(b.values.size() == Buffers::initial(shape_).values.size(),
          "batch-norm buffers do not match the model");
  for (size_t k = 0; k < convs_.size(); ++k) {
    if (!convs_[k].batch_norm) continue;
    const size_t bytes = sizeof(float) * size_t(shape_.convs[k].out_c);
    HISTOCNN_CUDA(cudaMemcpyAsync(persistent(convs_[k].running_mean), b.running_mean(int(k)), bytes,
                                  cudaMemcpyHostToDevice, stream_));
    HISTOCNN_CUDA(cudaMemcpyAsync(persistent(convs_[k].running_var), b.running_var(int(k)), bytes,
                                  cudaMemcpyHostToDevice, stream_));
  }
  sync();
  batches_tracked_ = given.batches_tracked;
}

void CudaTrainingStep::set_learning_rate(float learning_rate) {
  // A one-element fill kernel, not a copy: its argument travels with the
  // launch (a pageable cudaMemcpyAsync would synchronise the stream first),
  // and it runs outside any captured graph, which reads the value.
  launch_fill(reinterpret_cast<float*>(persistent(layout_.learning_rate)), learning_rate, 1,
              stream_);
  check_launch("set learning rate");
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

namespace {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int ordinal) : ordinal_(ordinal) {
    use_cuda_device(ordinal_);  // the context's handles live on the backend's device
    context_ = std::make_shared<Context>();
  }
  std::string name() const override { return "cuda"; }
  std::unique_ptr<TrainingStep> compile(const ModelSpec& spec, const NetworkShape& shape,
                                        const StepOptions& options) override {
    use_cuda_device(ordinal_);  // the step's stream, memory and graphs too
    return std::make_unique<CudaTrainingStep>(context_, spec, shape, options);
  }
  std::string precision_unsupported(const std::string& precision) const override {
    return precision_unsupported_on(*context_, precision);
  }

 private:
  int ordinal_;
  std::shared_ptr<Context> context_;
};

}  // namespace
}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(int ordinal) {
  return std::make_unique<cuda::CudaBackend>(ordinal);
}

}  // namespace histocnn
