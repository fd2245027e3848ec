// Denormal (subnormal) floats, magnitudes below 1.2e-38, take a slow
// microcode path on x86 CPUs. Once a network has converged its gradients and
// Adam's second moments (squared gradients) fill with them: on the 2-core VM
// the main job's CPU epoch grew from ~1 s to ~4 s over eight epochs
// (docs/results/denormals-2core.md). Treating them as zero (MXCSR's
// flush-to-zero and denormals-are-zero bits, as PyTorch's
// torch.set_flush_denormal(True) does) keeps every epoch as fast as the
// first; the values lost are below anything a float32 network resolves.
#pragma once

namespace histocnn {

// While it lives: FTZ + DAZ on the calling thread and on every thread of the
// OpenMP team (oneDNN's); on destruction the calling thread's previous mode
// is restored (the team's threads keep it: they belong to the computation).
// With `enabled` false, or on a CPU without SSE, it does nothing.
class FlushDenormals {
 public:
  explicit FlushDenormals(bool enabled = true);
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
  bool active_ = false;
};

// True when the calling thread flushes denormals (FTZ and DAZ both set).
bool denormals_flushed();

}  // namespace histocnn
