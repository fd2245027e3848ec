#include "core/threads.h"

#include <fcntl.h>
#include <omp.h>
#include <sched.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

namespace histocnn {
namespace {

// Cores this process has claimed: CPU -> the open, flock'ed lock file. Kept
// open until the process ends (the kernel releases the locks then, even after
// kill -9), and reused when the process bounds its cores again.
std::map<int, int>& claimed() {
  static std::map<int, int> cpus;
  return cpus;
}

std::string lock_folder() {
  return (std::filesystem::temp_directory_path() / ("histocnn-cpus-" + std::to_string(::getuid())))
      .string();
}

// Claims `cpu` for this process unless another histocnn process holds it.
bool claim(int cpu) {
  if (claimed().count(cpu)) return true;
  std::error_code ec;
  std::filesystem::create_directories(lock_folder(), ec);
  const std::string path = lock_folder() + "/cpu" + std::to_string(cpu) + ".lock";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return true;  // no lock folder: nothing to share with, take the core
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return false;
  }
  claimed()[cpu] = fd;
  return true;
}

// `threads` of the allowed CPUs, lowest numbers first: those no other
// histocnn run holds, then (with a warning) shared ones.
std::vector<int> choose_cpus(const cpu_set_t& allowed, int threads) {
  std::vector<int> mine, shared;
  for (int cpu = 0; cpu < CPU_SETSIZE && int(mine.size()) < threads; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) (claim(cpu) ? mine : shared).push_back(cpu);
  if (int(mine.size()) < threads)
    std::fprintf(stderr,
                 "warning: --threads %d: only %zu of the allowed cores are not in use by another "
                 "histocnn run; sharing the rest\n",
                 threads, mine.size());
  for (size_t i = 0; int(mine.size()) < threads && i < shared.size(); ++i)
    mine.push_back(shared[i]);
  return mine;
}

}  // namespace

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return omp_get_num_procs();
  return CPU_COUNT(&set);
}

int bound_cores(int threads) {
  const int available = available_cores();
  require(threads >= 0,
          "--threads: must be 0 (all cores) or a positive count, got " + std::to_string(threads));
  require(threads <= available, "--threads: " + std::to_string(threads) + " requested but only " +
                                    std::to_string(available) +
                                    " cores are available to this process");
  if (threads == 0) threads = available;
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (threads < available && sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
    cpu_set_t chosen;
    CPU_ZERO(&chosen);
    for (int cpu : choose_cpus(allowed, threads)) CPU_SET(cpu, &chosen);
    sched_setaffinity(0, sizeof(chosen), &chosen);
  }
  omp_set_num_threads(threads);
  return threads;
}

}  // namespace histocnn
