#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "core/error.h"

namespace histocnn {

std::vector<std::string> available_devices() {
  return {"cpu"};
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return make_cpu_backend();
  if (device == "cuda")
    fail(
        "--device cuda: this build of histocnn has no CUDA backend (CUDA toolkit or cuDNN not "
        "found at build time)");
  fail("--device: unknown device '" + device + "' (cpu, cuda)");
}

}  // namespace histocnn
