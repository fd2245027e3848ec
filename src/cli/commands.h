// Subcommands of the histocnn command line. Each registers its options on a
// CLI11 subcommand and returns the function that runs it after parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

#include "dist/communicator.h"

namespace histocnn::cli {

using Runner = std::function<int()>;

// The processes of this run (several under mpirun), set by main before any
// command runs.
Communicator& world();
void set_world(Communicator* communicator);

Runner add_synth(CLI::App& app);
Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_predict(CLI::App& app);
Runner add_memplan(CLI::App& app);
Runner add_selftest(CLI::App& app);
Runner add_study(CLI::App& app);
Runner add_report(CLI::App& app);
Runner add_stain(CLI::App& app);
Runner add_bench(CLI::App& app);
Runner add_ceilings(CLI::App& app);
Runner add_slide(CLI::App& app);
Runner add_slide_info(CLI::App& app);
Runner add_tiles(CLI::App& app);
Runner add_mil(CLI::App& app);

}  // namespace histocnn::cli
