#include "core/process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "core/error.h"

namespace histocnn {

ProcessResult run_process(const std::vector<std::string>& argv, const std::string& log_path,
                          TerminalSignals signals) {
  require(!argv.empty(), "run_process: no program");
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) fail(log_path + ": cannot write (" + std::strerror(errno) + ")");
  // An exec failure is reported through a close-on-exec pipe.
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    ::close(log);
    fail("cannot start " + argv[0] + ": " + std::strerror(errno));
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child dies with its parent (a study killed alone must not leave a
    // training running beside the next measurement); if the parent is
    // already gone, so is the reason to run.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    if (signals == TerminalSignals::own_group) {
      ::setpgid(0, 0);
      const int null = ::open("/dev/null", O_RDONLY);  // a background group must not read the tty
      if (null > STDIN_FILENO) ::dup2(null, STDIN_FILENO), ::close(null);
    }
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::execvp(args[0], args.data());
    const int error = errno;
    (void)!::write(status_pipe[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(log);
  ::close(status_pipe[1]);
  if (pid < 0) {
    ::close(status_pipe[0]);
    fail("cannot start " + argv[0] + ": " + std::strerror(errno));
  }
  int exec_error = 0;
  const ssize_t got = ::read(status_pipe[0], &exec_error, sizeof exec_error);
  ::close(status_pipe[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (got == ssize_t(sizeof exec_error))
    fail("cannot start " + argv[0] + ": " + std::strerror(exec_error));
  ProcessResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

}  // namespace histocnn
