// core/process.h: child processes without a shell, their exit and signal,
// and whether the terminal's Ctrl-C reaches them (gnuplot must not be killed
// by a Ctrl-C that `histocnn slide` handles itself).
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <sstream>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/process.h"
#include "test_util.h"

namespace histocnn {
namespace {

TEST(Process, ArgumentsReachTheProgramUntouchedAndItsOutputTheLog) {
  testing::TempDir dir;
  const std::string log = dir / "out.log";
  const ProcessResult r = run_process(
      {"sh", "-c", "printf '%s|' \"$@\"; echo; exit 3", "sh", "a b", "$HOME", "'q'"}, log);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(read_file(log), "a b|$HOME|'q'|\n");
  EXPECT_TRUE(run_process({"true"}, log).ok());
}

TEST(Process, ASignalThatEndsTheChildIsReported) {
  testing::TempDir dir;
  const ProcessResult r = run_process({"sh", "-c", "kill -TERM $$"}, dir / "log");
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_FALSE(r.ok());
}

TEST(Process, AMissingProgramIsAnErrorNamingIt) {
  testing::TempDir dir;
  try {
    run_process({"histocnn-no-such-program"}, dir / "log");
    FAIL() << "started a program that does not exist";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot start histocnn-no-such-program"),
              std::string::npos)
        << e.what();
  }
}

// The child's PID and process group, as /proc/<pid>/stat gives them, and
// what its stdin is.
struct ChildGroup {
  long pid = 0, group = 0;
  std::string stdin_path;
};
ChildGroup child_group(TerminalSignals signals, const std::string& log) {
  const ProcessResult r =
      run_process({"sh", "-c", "echo $$ $(cut -d' ' -f5 /proc/$$/stat) $(readlink /proc/$$/fd/0)"},
                  log, signals);
  EXPECT_TRUE(r.ok());
  ChildGroup c;
  std::istringstream(read_file(log)) >> c.pid >> c.group >> c.stdin_path;
  return c;
}

TEST(Process, AHelperRunsInItsOwnProcessGroupAndAStudyChildInOurs) {
  testing::TempDir dir;
  const ChildGroup shared = child_group(TerminalSignals::shared, dir / "shared.log");
  EXPECT_EQ(shared.group, long(::getpgrp())) << "Ctrl-C must reach a study's child";
  const ChildGroup own = child_group(TerminalSignals::own_group, dir / "own.log");
  EXPECT_GT(own.pid, 0);
  EXPECT_EQ(own.group, own.pid) << "the terminal's Ctrl-C must not reach gnuplot";
  EXPECT_NE(own.group, long(::getpgrp()));
  EXPECT_EQ(own.stdin_path, "/dev/null");
}

}  // namespace
}  // namespace histocnn
