// Our kernels' variants in one of the CUDA step's contests ("conv2's data
// gradient"), each timed into the contest's record. A variant the device
// refuses to launch (more registers, threads or shared memory than this GPU
// gives, a configuration it rejects) drops out with its reason in the record
// ("failed: ...") and on stderr, and the contest goes on without it: the
// kernels were written and host-tested without a GPU, and one variant that
// cannot launch on some GPU should cost that variant, not the run. A
// failure after which the device cannot go on (a fault) is rethrown:
// nothing after it could run. Plain C++ (the timer and the device's check
// are given: device_timing.h's device_contenders), so tested on the host.
#pragma once

#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "backends/backend.h"
#include "core/error.h"
#include "memory/memory_resource.h"

namespace histocnn::cuda {

class Contenders {
 public:
  // The mean milliseconds of `run` on the device (throws Error where a
  // launch fails).
  using Timer = std::function<float(const std::function<void()>& run)>;
  // After a failure: whether the device can go on (the error cleared).
  using Recovers = std::function<bool()>;

  Contenders(std::string what, nlohmann::json& times, Timer timer, Recovers recovers)
      : what_(std::move(what)),
        times_(times),
        timer_(std::move(timer)),
        recovers_(std::move(recovers)) {}

  // The variant's mean milliseconds into times[key]; -1 where the device
  // refused it. Out of memory and failures the device cannot recover from
  // are rethrown.
  float time(const std::string& key, const std::function<void()>& run) {
    try {
      const float ms = timer_(run);
      times_[key] = ms;
      ++ran_;
      return ms;
    } catch (const OutOfMemory&) {
      throw;
    } catch (const Error& e) {
      if (!recovers_()) throw;
      times_[key] = std::string("failed: ") + e.what();
      if (failure_.empty()) failure_ = key + ": " + e.what();
      std::fprintf(stderr, "warning: %s: %s could not run on this GPU (%s); timed without it\n",
                   what_.c_str(), key.c_str(), e.what());
      return -1;
    }
  }

  // Where `needed` (the route forced, or nothing else can take its place)
  // and every variant timed was refused: KernelRefused, naming the first.
  void require_one_ran(bool needed) const {
    if (needed && ran_ == 0 && !failure_.empty())
      throw KernelRefused(what_ + ": our kernel could not run on this GPU (" + failure_ + ")");
  }

 private:
  std::string what_;
  nlohmann::json& times_;
  Timer timer_;
  Recovers recovers_;
  int ran_ = 0;
  std::string failure_;
};

}  // namespace histocnn::cuda
