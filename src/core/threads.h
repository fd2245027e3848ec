// Bounding the cores a run uses. The paper compares 1, 2, 4, 8 and 16 cores,
// so --threads N must really bound the process: we restrict the process's CPU
// affinity to N of the allowed CPUs (compute, data workers and all), and set
// the OpenMP team size that oneDNN uses to N.
#pragma once

namespace histocnn {

int available_cores();
// Restricts the process to `threads` cores (0 = all available). Returns the
// count in effect. Throws if more cores are requested than available.
int bound_cores(int threads);

}  // namespace histocnn
