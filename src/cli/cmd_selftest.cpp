#include <cstdio>

#include "backends/backend.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "train/selftest.h"

namespace histocnn::cli {
namespace {

// Why the GPU was not checked, in the words select_device would use.
std::string why_no_gpu() {
  try {
    select_device("cuda");
  } catch (const Error& e) {
    return std::string("not checked: ") + e.what();
  }
  return "";
}

}  // namespace

Runner add_selftest(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "selftest",
      "verify this machine's backend: every layer forward/backward against a reference, a few "
      "training steps with each allocator, allocator invariants on the device");
  struct Args {
    std::string device, size = "64", model;  // device "": every one this machine can use
    int batch = 8, steps = 3, classes = 0;   // 0: as the spec says
    bool cudnn_graph = false, channels_last = false;
    elementwise::LabelSmoothing label_smoothing;  // as train's
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--device", a->device,
                  "cuda (vs the CPU backend) or cpu (vs the naive reference); default: every "
                  "device this machine can use");
  cmd->add_option("--model", a->model, "model spec file (default: the paper's network)");
  cmd->add_option("--classes", a->classes,
                  "classes of the network's last layer (e.g. 5 for a grade model; default: the "
                  "spec's)")
      ->check(CLI::Range(2, kMaxClasses));
  cmd->add_option("--size", a->size, "input size, N or WxH")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")
      ->capture_default_str()
      ->check(CLI::Range(2, 4096));
  cmd->add_option("--steps", a->steps, "training steps per allocator")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  add_label_smoothing_options(*cmd, a->label_smoothing)->check(CLI::Range(0.0, 0.5));
  cmd->add_flag("--cudnn-graph", a->cudnn_graph,
                "cuda: the step's convolutions through cuDNN's graph API (as train --cudnn-graph)");
  cmd->add_flag("--channels-last", a->channels_last,
                "cuda: the step's maps channels last (as train --channels-last)");
  return [a] {
    require(a->device != "cpu" || (!a->channels_last && !a->cudnn_graph),
            std::string(a->channels_last ? "--channels-last" : "--cudnn-graph") +
                ": a CUDA option (--device cuda)");
    SelfTestOptions o;
    o.cudnn_graph = a->cudnn_graph;
    o.channels_last = a->channels_last;
    o.label_smoothing = a->label_smoothing;
    parse_size(a->size, "--size", &o.width, &o.height);
    if (!a->model.empty())
      o.spec = parse_model_spec(read_file(a->model, size_t(1) << 20), a->model);
    if (a->classes) o.spec = with_classes(o.spec, a->classes);
    o.batch = a->batch;
    o.steps = a->steps;
    const std::vector<std::string> devices =
        a->device.empty() ? available_devices() : std::vector<std::string>{a->device};
    bool passed = true;
    for (const std::string& device : devices) {
      o.device = device;
      const SelfTestReport report = run_selftest(o);
      if (devices.size() > 1 || a->device.empty()) std::printf("device %s:\n", device.c_str());
      std::printf("%s", report.table().c_str());
      passed = passed && report.passed;
    }
    if (a->device.empty() && devices.size() == 1) std::printf("%s\n", why_no_gpu().c_str());
    return passed ? 0 : 1;
  };
}

}  // namespace histocnn::cli
