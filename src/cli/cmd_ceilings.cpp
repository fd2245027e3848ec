// histocnn ceilings: what this machine's cores can do, measured on the cores
// a run would get (study/machine_ceilings.h). `histocnn study --ceilings`
// runs it once per CPU thread count, in its own process so that --threads
// binds it as it binds a measurement, and reads each epoch against it.
#include <cstdio>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/paths.h"
#include "core/threads.h"
#include "study/machine_ceilings.h"

namespace histocnn::cli {

Runner add_ceilings(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "ceilings",
      "measure what the cores can do: oneDNN's sgemm GFLOP/s and the STREAM triad's GB/s on "
      "--threads cores (what an epoch's rate is read against)");
  auto threads = std::make_shared<int>(0);
  auto json = std::make_shared<std::string>();
  cmd->add_option("--threads", *threads, "CPU cores (0 = all)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  cmd->add_option("--json", *json, "also write the measurement here (atomically)");
  return [threads, json] {
    if (!json->empty()) prepare_output_file("--json", *json);
    const int cores = bound_cores(*threads);
    const nlohmann::json c = measure_ceilings(cores);
    std::printf("%s\n", ceilings_line(c).c_str());
    if (!json->empty()) write_file_atomically(*json, c.dump(2) + "\n");
    return 0;
  };
}

}  // namespace histocnn::cli
