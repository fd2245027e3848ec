// Which device-memory resource a GPU run uses, from three sources, like
// Theano's flag / THEANO_FLAGS / .theanorc. Precedence: flag > environment > file.
//
//   flags:  --allocator direct|pool|async|plan   --gpu-mem-pool VALUE
//   env:    HISTOCNN_FLAGS="allocator=pool,gpu_mem_pool=0.8"
//   file:   histocnn.toml in the working directory (or $HISTOCNN_CONFIG):
//             [gpu]
//             allocator = "pool"
//             mem_pool = 0.8
//
// gpu_mem_pool keeps CNMeM's meaning (see cnmem_reserve_bytes): 0 = off (each
// tensor a cudaMalloc/cudaFree, i.e. allocator "direct"), 0 < v <= 1 = that
// fraction of device memory reserved up front, v > 1 = that many MB. Setting
// it without an allocator selects "direct" (0) or "pool" (> 0), as Theano did.
// Invalid values are errors naming their source.
#pragma once

#include <optional>
#include <string>

namespace histocnn {

struct MemoryConfig {
  std::string allocator = "plan";
  double gpu_mem_pool = 0.95;  // the pool's reserve when allocator == "pool"
  std::string source;          // where the allocator choice came from (flag, env, file, default)
  std::string to_string() const;
};

struct MemoryFlags {
  std::optional<std::string> allocator;
  std::optional<double> gpu_mem_pool;
};

// `env_value`: the content of HISTOCNN_FLAGS (nullptr if unset); `file`: the
// config path to read if it exists ("" = none).
MemoryConfig resolve_memory_config(const MemoryFlags& flags, const char* env_value,
                                   const std::string& file);
// The same with the real environment and ./histocnn.toml (or $HISTOCNN_CONFIG).
MemoryConfig resolve_memory_config(const MemoryFlags& flags);

}  // namespace histocnn
