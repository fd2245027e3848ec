#include "core/threads.h"

#include <omp.h>
#include <sched.h>

#include <string>

#include "core/error.h"

namespace histocnn {

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
    int taken = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && taken < threads; ++cpu) {
      if (CPU_ISSET(cpu, &allowed)) {
        CPU_SET(cpu, &chosen);
        ++taken;
      }
    }
    sched_setaffinity(0, sizeof(chosen), &chosen);
  }
  omp_set_num_threads(threads);
  return threads;
}

}  // namespace histocnn
