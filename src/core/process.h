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

// Runs argv[0] (looked up in PATH) with stdout and stderr appended to
// `log_path` (truncated first); waits for it. The child is sent SIGTERM if
// this process dies first (PR_SET_PDEATHSIG; the calling thread must live as
// long as the child). Throws histocnn::Error naming the program when it
// cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, const std::string& log_path);

}  // namespace histocnn
