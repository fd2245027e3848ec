// The device a process computes on. It is chosen once per process
// (select_device in backends/backend.h, from --device and the process's local
// rank) and handed to everything that touches it — the memory engine, the
// backend and its steps, NCCL, eval and predict — so that no part picks a GPU
// on its own and every handle, pool and communicator lives on the same one.
#pragma once

#include <string>

namespace histocnn {

struct Device {
  std::string kind = "cpu";  // cpu | cuda
  int ordinal = 0;           // the CUDA device number (0 for the CPU)

  bool is_cuda() const { return kind == "cuda"; }
  // "cpu", or "cuda:N" for messages.
  std::string name() const { return is_cuda() ? kind + ":" + std::to_string(ordinal) : kind; }
};

// The host's processors (needs no selection).
inline Device cpu_device() {
  return {};
}

}  // namespace histocnn
