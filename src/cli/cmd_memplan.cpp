#include <algorithm>
#include <cstdio>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_schedule.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "memory/memory_engine.h"

namespace histocnn::cli {
namespace {

// The step's peak: compiled on the device when there is one (real layouts and
// workspaces); for cuda without a GPU, the CUDA step's own schedule planned
// on the host, cuDNN's workspaces counted as 0 (they are chosen on a device).
struct StepQuery {
  std::string precision;
  bool channels_last = false;  // cuda
};

// The arena if the later blocks' kernels from the pooled gradient win too
// (weight and data gradients: with both, a block's output gradient is never
// written), after conv1's `first` routes; "" where no later block can take one.
std::string later_routes_line(const NetworkShape& shape, const cuda::MapFormat& format,
                              const cuda::ConvRoutes& first) {
  std::vector<cuda::ConvRoutes> routes = {first};
  bool any = false;
  for (size_t k = 1; k < shape.convs.size(); ++k) {
    routes.push_back({});
    for (cuda::ConvRoutes r : {cuda::ConvRoutes{false, true, true}, {false, true, false}}) {
      routes.back() = r;
      if (cuda::conv_routes_unsupported(shape, routes).empty()) break;
      routes.back() = {};
    }
    any = any || routes.back().pooled_weight_gradient;
  }
  if (!any) return "";
  const MemoryPlan plan = plan_memory(cuda::build_cuda_schedule(shape, {}, format, routes).tensors);
  char line[300];
  std::snprintf(line, sizeof line,
                "and if the later blocks' weight and data gradients from the pooled gradient win "
                "theirs: arena %.1f MB\n",
                double(plan.arena_bytes) / 1e6);
  return line;
}

// The arena if conv1's own kernels win their contests on the device (each
// removes a conv-output-sized tensor: cuda_schedule.h, ConvRoutes); the plan
// above is what the step takes if they lose, so a budget is checked against it.
std::string conv1_routes_line(const NetworkShape& shape, const cuda::MapFormat& format) {
  cuda::ConvRoutes routes{true, true};
  if (!cuda::conv1_routes_unsupported(shape, routes).empty()) routes.fused_forward = false;
  if (!cuda::conv1_routes_unsupported(shape, routes).empty()) return "";
  const MemoryPlan plan =
      plan_memory(cuda::build_cuda_schedule(shape, {}, format, {routes}).tensors);
  char line[300];
  std::snprintf(line, sizeof line,
                "if conv1's own kernels win their timed contests on the device (%s): arena "
                "%.1f MB\n",
                routes.fused_forward ? "fused forward, weight gradient from the pooled gradient"
                                     : "weight gradient from the pooled gradient",
                double(plan.arena_bytes) / 1e6);
  return line + later_routes_line(shape, format, routes);
}

int64_t step_bytes(Backend* backend, const ModelSpec& spec, const StepQuery& q, int batch,
                   int height, int width, std::string* plan_text) {
  const NetworkShape shape = infer_shapes(spec, batch, height, width);
  if (!backend) {
    const bool bf16 = q.precision == "bf16";
    const cuda::MapFormat format{bf16, q.channels_last};
    const cuda::CudaSchedule schedule = cuda::build_cuda_schedule(shape, {}, format);
    const MemoryPlan plan = plan_memory(schedule.tensors);
    const int64_t persistent = int64_t(cuda::persistent_bytes(shape, format));
    if (plan_text)
      *plan_text = describe_plan(schedule.tensors, plan) +
                   "CUDA step schedule (no CUDA device here: cuDNN workspaces are chosen on the "
                   "device and not counted); persistent " +
                   std::to_string(persistent >> 20) +
                   " MB (parameters, gradients, Adam state, cuBLAS workspace, the batch's "
                   "landing buffer" +
                   (bf16 ? std::string(", bf16 copies of parameters and gradients") : "") +
                   (q.channels_last ? ", channels-last filters and their gradients" : "") + ")\n" +
                   conv1_routes_line(shape, format);
    return int64_t(plan.arena_bytes) + persistent;
  }
  StepOptions options;
  options.precision = q.precision;
  options.channels_last = q.channels_last;
  auto step = backend->compile(spec, shape, options);
  const MemoryReport m = step->memory();
  if (plan_text) *plan_text = m.plan + m.detail + "\n";
  return m.activation_bytes + m.parameter_bytes;
}

}  // namespace

namespace {

// Bytes in the units --budget reads (MB = MiB, GB = GiB: 1024-based), so a
// peak and a budget compare as printed.
std::string binary_size(int64_t bytes) {
  char text[48];
  if (bytes >= (int64_t(1) << 30))
    std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(int64_t(1) << 30));
  else
    std::snprintf(text, sizeof text, "%.2f MiB", double(bytes) / double(1 << 20));
  return text;
}

}  // namespace

Runner add_memplan(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "memplan",
      "print the training step's memory plan and peak, or the largest batch for a budget");
  struct Args {
    std::string size = "200", budget, model, device = "cpu";
    StepQuery query{"fp32"};
    int batch = 50;
    bool max_batch = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--size", a->size, "input size, N or WxH")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")->capture_default_str();
  cmd->add_flag("--max-batch", a->max_batch, "find the largest batch whose step fits --budget");
  cmd->add_option("--budget", a->budget,
                  "memory budget, e.g. 4GB (the paper's GTX-980; MB and GB are 1024-based): "
                  "--max-batch searches it; a plan says whether it fits");
  cmd->add_option("--model", a->model, "model spec file (default: the paper's network)");
  cmd->add_option("--device", a->device,
                  "whose plan: cpu or cuda (the CUDA step's schedule, also without a GPU)")
      ->capture_default_str();
  cmd->add_flag("--channels-last", a->query.channels_last,
                "cuda: the conv blocks' maps channels last (NHWC), as train --channels-last");
  cmd->add_option("--precision", a->query.precision,
                  "the step's precision: fp32, tf32 (cuda) or bf16 (smaller maps)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  return [a] {
    int width = 0, height = 0;
    parse_size(a->size, "--size", &width, &height);
    require(!a->query.channels_last || a->device == "cuda",
            "--channels-last: applies to --device cuda");
    const ModelSpec spec = a->model.empty()
                               ? default_model_spec()
                               : parse_model_spec(read_file(a->model, size_t(1) << 20), a->model);
    std::unique_ptr<Backend> backend;
    const auto devices = available_devices();
    if (a->device != "cuda" || std::find(devices.begin(), devices.end(), "cuda") != devices.end())
      backend = make_backend(select_device(a->device));  // an unknown device fails here
    if (!a->max_batch) {
      require(a->batch >= 1, "--batch: must be at least 1, got " + std::to_string(a->batch));
      std::string plan;
      const int64_t total =
          step_bytes(backend.get(), spec, a->query, a->batch, height, width, &plan);
      std::printf("%s", plan.c_str());
      std::printf(
          "peak %s for %dx%d, batch %d on %s (activations + parameters, gradients, Adam "
          "state)\n",
          binary_size(total).c_str(), width, height, a->batch, a->device.c_str());
      if (!a->budget.empty()) {  // the plan against the budget (--max-batch searches it)
        const size_t budget = parse_byte_size(a->budget, "--budget");
        std::printf("%s --budget %s (%s)\n",
                    size_t(total) <= budget ? "fits within" : "does not fit", a->budget.c_str(),
                    binary_size(int64_t(budget)).c_str());
      }
      return 0;
    }
    require(!a->budget.empty(), "--max-batch: needs --budget (e.g. --budget 4GB)");
    const size_t budget = parse_byte_size(a->budget, "--budget");
    // Memory grows monotonically with the batch: exponential then binary search.
    int fits = 0, fails = 1;
    while (step_bytes(backend.get(), spec, a->query, fails, height, width, nullptr) <=
           int64_t(budget)) {
      fits = fails;
      fails *= 2;
      require(fails <= (1 << 20),
              "--budget: every batch up to 1M fits; the budget is too large to search");
    }
    while (fails - fits > 1) {
      const int mid = fits + (fails - fits) / 2;
      (step_bytes(backend.get(), spec, a->query, mid, height, width, nullptr) <= int64_t(budget)
           ? fits
           : fails) = mid;
    }
    if (fits == 0) {
      std::printf("no batch fits %s (%s) at %dx%d (batch 1 needs %s)\n", a->budget.c_str(),
                  binary_size(int64_t(budget)).c_str(), width, height,
                  binary_size(step_bytes(backend.get(), spec, a->query, 1, height, width, nullptr))
                      .c_str());
      return 1;
    }
    std::printf("largest batch for %s (%s) at %dx%d on %s: %d (%s)\n", a->budget.c_str(),
                binary_size(int64_t(budget)).c_str(), width, height, a->device.c_str(), fits,
                binary_size(step_bytes(backend.get(), spec, a->query, fits, height, width, nullptr))
                    .c_str());
    return 0;
  };
}

}  // namespace histocnn::cli
