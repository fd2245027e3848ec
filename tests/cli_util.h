// Running the histocnn binary from a test: the command line, its exit status
// and its output (stdout and stderr together).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace histocnn::testing {

struct CommandResult {
  int status;
  std::string output;
};

// A shell command line, with its output.
inline CommandResult run_raw(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  for (size_t n; (n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0;)
    output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

#ifdef HISTOCNN_BINARY  // not in histocnn_concurrency_tests, which runs no histocnn
// histocnn with these arguments.
inline CommandResult run(const std::string& args) {
  return run_raw(std::string(HISTOCNN_BINARY) + " " + args);
}
#endif

}  // namespace histocnn::testing
