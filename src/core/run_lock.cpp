#include "core/run_lock.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include "core/error.h"

namespace histocnn {
namespace {

// The PID in an existing lock file, or 0 when it holds none.
long lock_owner(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  return in >> pid ? pid : 0;
}

bool alive(long pid) {
  return pid > 0 && (::kill(pid_t(pid), 0) == 0 || errno == EPERM);
}

}  // namespace

RunLock::RunLock(const std::string& folder)
    : path_((std::filesystem::path(folder) / ".lock").string()) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      const bool written = ::write(fd, pid.data(), pid.size()) == ssize_t(pid.size());
      ::close(fd);
      if (!written) fail(path_ + ": cannot write the run's lock file");
      return;
    }
    if (errno != EEXIST)
      fail(folder + ": cannot create its lock file (" + std::strerror(errno) + ")");
    const long owner = lock_owner(path_);
    if (alive(owner) && owner != long(::getpid()))
      fail("--output " + folder + ": another histocnn (PID " + std::to_string(owner) +
           ") is writing this run; wait for it or choose another folder");
    std::filesystem::remove(path_);  // its owner is gone: take over
  }
  fail(folder + ": cannot take its lock file " + path_);
}

RunLock::RunLock(RunLock&& other) noexcept : path_(std::move(other.path_)) {
  other.path_.clear();
}

RunLock::~RunLock() {
  std::error_code ec;
  if (!path_.empty() && lock_owner(path_) == long(::getpid())) std::filesystem::remove(path_, ec);
}

}  // namespace histocnn
