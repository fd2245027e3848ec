// safetensors files (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape
// and byte range, then the raw little-endian data. We write F32 tensors and
// string metadata (the model spec, training state); PyTorch, JAX and
// HuggingFace tools read these files directly. I64 tensors carry PyTorch's
// integer buffers (bnK.num_batches_tracked).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace histocnn {

struct NamedTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;  // dtype F32
  std::vector<int64_t> ints;  // dtype I64 (values then empty)
  bool is_int() const { return !ints.empty(); }
  int64_t element_count() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

struct SafetensorsFile {
  std::map<std::string, NamedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes atomically; tensors in name order.
void write_safetensors(const std::string& path, const SafetensorsFile& file);
// Throws histocnn::Error naming `path` on any malformed content.
SafetensorsFile read_safetensors(const std::string& path);
// The same from the file's bytes; `path` names it in errors.
SafetensorsFile parse_safetensors(const std::string& content, const std::string& path);

}  // namespace histocnn
