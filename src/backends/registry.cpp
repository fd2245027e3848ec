#include <dnnl.h>

#include <cstdlib>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef HISTOCNN_HAVE_CUDA_BACKEND
#include "backends/cuda/cuda_backend.h"
#include "memory/cuda_resources.h"
#endif

namespace histocnn {

bool cuda_backend_built() {
#ifdef HISTOCNN_HAVE_CUDA_BACKEND
  return true;
#else
  return false;
#endif
}

std::string build_description() {
  const dnnl_version_t* dnnl = dnnl_version();
  std::string text = std::string("histocnn ") + HISTOCNN_VERSION + " (git " +
                     HISTOCNN_GIT_REVISION + ")\nCPU backend: oneDNN " +
                     std::to_string(dnnl->major) + "." + std::to_string(dnnl->minor) + "." +
                     std::to_string(dnnl->patch) + "\nCUDA backend: ";
#ifdef HISTOCNN_HAVE_CUDA_BACKEND
  text += cuda_library_versions();
#else
  text += "not built (" + no_cuda_backend_reason() + ")";
#endif
#ifdef HISTOCNN_HAVE_MPI
  text += "\nMPI: yes";
#else
  text += "\nMPI: no";
#endif
#ifdef HISTOCNN_HAVE_NCCL
  text += ", NCCL: yes";
#else
  text += ", NCCL: no";
#endif
  return text;
}

std::string no_cuda_backend_reason() {
  // The relocatable package's launcher runs its CPU-only build where it finds
  // no cuDNN/cuBLAS, and says why here (scripts/package.sh).
  if (const char* why = std::getenv("HISTOCNN_CPU_ONLY_REASON"); why && *why)
    return std::string("the package runs its CPU-only build here: ") + why;
  return "this build of histocnn has no CUDA backend (CUDA toolkit or cuDNN not found at build "
         "time)";
}

std::vector<std::string> available_devices() {
#ifdef HISTOCNN_HAVE_CUDA_BACKEND
  if (cuda_device_count() > 0) return {"cpu", "cuda"};
#endif
  return {"cpu"};
}

Device select_device(const std::string& kind, int local_rank) {
  if (kind == "cpu") return cpu_device();
  require(kind == "cuda", "--device: unknown device '" + kind + "' (cpu, cuda)");
#ifdef HISTOCNN_HAVE_CUDA_BACKEND
  return {kind, select_cuda_device(local_rank)};
#else
  (void)local_rank;
  fail("--device cuda: " + no_cuda_backend_reason());
#endif
}

std::unique_ptr<Backend> make_backend(const Device& device) {
  if (!device.is_cuda()) return make_cpu_backend();
#ifdef HISTOCNN_HAVE_CUDA_BACKEND
  return make_cuda_backend(device.ordinal);
#else
  fail("--device cuda: " + no_cuda_backend_reason());
#endif
}

}  // namespace histocnn
