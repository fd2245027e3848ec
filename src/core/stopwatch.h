// Wall-clock seconds for the timings histocnn reports (steps, stages, reads).
#pragma once

#include <chrono>

namespace histocnn {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace histocnn
