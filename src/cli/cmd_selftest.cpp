#include <cstdio>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "train/selftest.h"

namespace histocnn::cli {

Runner add_selftest(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "selftest",
      "verify this machine's backend: every layer forward/backward against a reference, a few "
      "training steps with each allocator, allocator invariants on the device");
  struct Args {
    std::string device = "cuda", size = "64", model;
    int batch = 8, steps = 3;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--device", a->device,
                  "cuda (vs the CPU backend) or cpu (vs the naive reference)")
      ->capture_default_str();
  cmd->add_option("--model", a->model, "model spec file (default: the paper's network)");
  cmd->add_option("--size", a->size, "input size, N or WxH")->capture_default_str();
  cmd->add_option("--batch", a->batch, "batch size")
      ->capture_default_str()
      ->check(CLI::Range(2, 4096));
  cmd->add_option("--steps", a->steps, "training steps per allocator")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  return [a] {
    SelfTestOptions o;
    o.device = a->device;
    parse_size(a->size, "--size", &o.width, &o.height);
    if (!a->model.empty())
      o.spec = parse_model_spec(read_file(a->model, size_t(1) << 20), a->model);
    o.batch = a->batch;
    o.steps = a->steps;
    const SelfTestReport report = run_selftest(o);
    std::printf("%s", report.table().c_str());
    return report.passed ? 0 : 1;
  };
}

}  // namespace histocnn::cli
