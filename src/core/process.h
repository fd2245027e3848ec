// Child processes without a shell: the argument vector goes to execvp as is,
// so paths with spaces, quotes or '$' are passed untouched.
#pragma once

#include <string>
#include <vector>

namespace histocnn {

struct ProcessResult {
  int exit_code = -1;  // when it exited
  int signal = 0;      // when a signal ended it (e.g. SIGINT from Ctrl-C)
  bool ok() const { return signal == 0 && exit_code == 0; }
};

// Whether the terminal's Ctrl-C (SIGINT to the foreground process group)
// reaches the child. A study's training child shares it: Ctrl-C stops the
// measurement. A helper this process waits for (gnuplot drawing a figure)
// runs in its own process group with stdin from /dev/null: Ctrl-C is this
// process's to handle (`histocnn slide` finishes the figure in progress,
// then stops), and if it dies the helper still gets SIGTERM (below).
enum class TerminalSignals { shared, own_group };

// Runs argv[0] (looked up in PATH) with stdout and stderr appended to
// `log_path` (truncated first); waits for it. The child is sent SIGTERM if
// this process dies first (PR_SET_PDEATHSIG; the calling thread must live as
// long as the child). Throws histocnn::Error naming the program when it
// cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& log_path,
                          TerminalSignals signals = TerminalSignals::shared);

}  // namespace histocnn
