// histocnn: train and evaluate CNNs on colon histopathology images.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "cli/commands.h"
#include "core/error.h"

namespace {

// One line to stderr and a non-zero exit; with several processes the whole
// job ends (MPI_Abort), so no rank waits forever for a failed one.
int report_failure(const std::string& message, int code) {
  histocnn::Communicator& world = histocnn::cli::world();
  if (world.size() > 1) world.abort(message);
  std::fprintf(stderr, "histocnn: %s\n", message.c_str());
  return code;
}

// No number from the command line is NaN or infinite, whatever the option:
// comparison-based range checks let NaN through, so it is refused here, once,
// for every option of every subcommand (present and future).
void reject_non_finite_numbers(const CLI::App& app) {
  for (const CLI::App* cmd : app.get_subcommands({}))
    for (const CLI::Option* opt : cmd->get_options())
      for (const std::string& value : opt->results()) {
        char* end = nullptr;
        const double number = std::strtod(value.c_str(), &end);
        if (end != value.c_str() && *end == '\0' && !std::isfinite(number))
          throw histocnn::Error(opt->get_name() + " " + value + ": not a finite number");
      }
}

// CLI11 prints a negatable flag as "--tta,--no-tta{false}": the help shows
// the names alone.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* option, bool positional) const override {
    std::string name = CLI::Formatter::make_option_name(option, positional);
    for (size_t open; (open = name.find('{')) != std::string::npos;) {
      const size_t close = name.find('}', open);
      if (close == std::string::npos) break;
      name.erase(open, close - open + 1);
    }
    return name;
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<histocnn::Communicator> world;
  try {
    world = histocnn::make_communicator(&argc, &argv);  // MPI_Init under mpirun
  } catch (const histocnn::Error& e) {
    std::fprintf(stderr, "histocnn: %s\n", e.what());
    return 1;
  }
  histocnn::cli::set_world(world.get());
  CLI::App app{"histocnn: fast CNN training for colon histopathology (GlaS) on CPU and GPU"};
  app.formatter(std::make_shared<HelpFormatter>());  // before the subcommands: they inherit it
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  app.set_version_flag(
      "--version", [] { return histocnn::build_description(); },
      "version, git revision and the backends built");
  namespace cli = histocnn::cli;
  std::vector<std::pair<CLI::App*, cli::Runner>> commands;
  for (auto add :
       {cli::add_synth, cli::add_train, cli::add_eval, cli::add_predict, cli::add_memplan,
        cli::add_selftest, cli::add_study, cli::add_report, cli::add_stain, cli::add_bench,
        cli::add_ceilings, cli::add_slide, cli::add_slide_info, cli::add_tiles, cli::add_mil}) {
    const size_t before = app.get_subcommands([](CLI::App*) { return true; }).size();
    cli::Runner runner = add(app);
    const auto all = app.get_subcommands([](CLI::App*) { return true; });
    if (all.size() != before + 1) return 3;  // each add_* registers exactly one subcommand
    commands.emplace_back(all.back(), runner);
  }
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (auto& [cmd, run] : commands) {
      known = known || cmd->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + cmd->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "histocnn: unknown command '%s' (%s)\n", argv[1], names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "histocnn: %s (see --help)\n", e.what());
    return 2;
  }
  try {
    reject_non_finite_numbers(app);
    for (auto& [cmd, run] : commands)
      if (cmd->parsed()) return run();
  } catch (const histocnn::Error& e) {
    return report_failure(e.what(), 1);
  } catch (const std::exception& e) {
    return report_failure(std::string("internal error: ") + e.what(), 3);
  }
  return 0;
}
