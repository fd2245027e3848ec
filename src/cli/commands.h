// Subcommands of the histocnn command line. Each registers its options on a
// CLI11 subcommand and returns the function that runs it after parsing.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace histocnn::cli {

using Runner = std::function<int()>;

Runner add_synth(CLI::App& app);
Runner add_train(CLI::App& app);
Runner add_eval(CLI::App& app);
Runner add_predict(CLI::App& app);
Runner add_memplan(CLI::App& app);
Runner add_selftest(CLI::App& app);
Runner add_study(CLI::App& app);
Runner add_report(CLI::App& app);

}  // namespace histocnn::cli
