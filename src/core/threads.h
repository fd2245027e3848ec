// Bounding the cores a run uses. The paper compares 1, 2, 4, 8 and 16 cores,
// so --threads N must really bound the process: we restrict the process's CPU
// affinity to N of the allowed CPUs (compute, data workers and all), and set
// the OpenMP team size that oneDNN uses to N. Runs share the machine: each
// claims its cores with a lock file per CPU (flock, released when the process
// ends, even by kill -9), so two `--threads 1` runs land on two cores; only
// when too few are free does a run share, with a warning.
#pragma once

namespace histocnn {

int available_cores();
// Restricts the process to `threads` cores (0 = all available). Returns the
// count in effect. Throws if more cores are requested than available.
int bound_cores(int threads);

}  // namespace histocnn
