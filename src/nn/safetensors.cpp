#include "nn/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/checked.h"
#include "core/error.h"

namespace histocnn {

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  size_t offset = 0;
  for (const auto& [name, tensor] : file.tensors) {
    const int64_t count = tensor.element_count();
    require(
        count == static_cast<int64_t>(tensor.is_int() ? tensor.ints.size() : tensor.values.size()),
        path + ": tensor '" + name + "' shape does not match its data");
    const size_t bytes = tensor.is_int() ? tensor.ints.size() * sizeof(int64_t)
                                         : tensor.values.size() * sizeof(float);
    header[name] = {{"dtype", tensor.is_int() ? "I64" : "F32"},
                    {"shape", tensor.shape},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string head = header.dump();
  while ((head.size() + 8) % 8 != 0) head.push_back(' ');
  std::string content(8, '\0');
  const uint64_t n = head.size();
  for (int i = 0; i < 8; ++i) content[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  content += head;
  content.reserve(content.size() + offset);
  for (const auto& [name, tensor] : file.tensors) {
    if (tensor.is_int())
      content.append(reinterpret_cast<const char*>(tensor.ints.data()),
                     tensor.ints.size() * sizeof(int64_t));
    else
      content.append(reinterpret_cast<const char*>(tensor.values.data()),
                     tensor.values.size() * sizeof(float));
  }
  write_file_atomically(path, content);
}

SafetensorsFile read_safetensors(const std::string& path) {
  return parse_safetensors(read_file(path), path);
}

SafetensorsFile parse_safetensors(const std::string& content, const std::string& path) {
  require(content.size() >= 8, path + ": not a safetensors file (too short)");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(static_cast<unsigned char>(content[i])) << (8 * i);
  require(n <= content.size() - 8, path + ": not a safetensors file (bad header length)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(content.substr(8, n));
  } catch (const std::exception& e) {
    fail(path + ": safetensors header is not valid JSON");
  }
  require(header.is_object(), path + ": safetensors header is not an object");
  const size_t data_start = 8 + n;
  const size_t data_size = content.size() - data_start;
  SafetensorsFile file;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      require(it->is_object(), path + ": safetensors __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) file.metadata[m.key()] = m->get<std::string>();
      continue;
    }
    const auto& t = *it;
    const std::string where = path + ": tensor '" + it.key() + "'";
    require(
        t.is_object() && t.contains("dtype") && t.contains("shape") && t.contains("data_offsets"),
        where + " lacks dtype/shape/data_offsets");
    require(t["dtype"] == "F32" || t["dtype"] == "I64",
            where + " has dtype " + t["dtype"].dump() + ", expected F32 (or I64)");
    const bool ints = t["dtype"] == "I64";
    const size_t element = ints ? sizeof(int64_t) : sizeof(float);
    NamedTensor tensor;
    require(t["shape"].is_array() && t["shape"].size() <= 8, where + " has a bad shape");
    int64_t count = 1;
    for (const auto& d : t["shape"]) {
      require(d.is_number_integer() && d.get<int64_t>() >= 0, where + " has a bad shape");
      tensor.shape.push_back(d.get<int64_t>());
      count = checked_product({count, tensor.shape.back()}, where + "'s shape");
    }
    // The data must be in the file: no element count beyond its size (so no
    // overflow below). Checked on the whole product: a zero dimension makes
    // an empty tensor of any other dimensions, even in a file without data.
    require(count <= int64_t(data_size / element),
            where + "'s shape: too large (more than " + std::to_string(data_size / element) + ")");
    const auto& offsets = t["data_offsets"];
    require(offsets.is_array() && offsets.size() == 2 && offsets[0].is_number_unsigned() &&
                offsets[1].is_number_unsigned(),
            where + " has bad data_offsets");
    const auto begin = offsets[0].get<uint64_t>();
    const auto end = offsets[1].get<uint64_t>();
    require(begin <= end && end <= data_size && end - begin == uint64_t(count) * element,
            where + " has data offsets outside the file (truncated?)");
    // An empty tensor's vector has no storage to copy into (memcpy from or
    // to null is undefined even for zero bytes).
    if (ints) {
      tensor.ints.resize(static_cast<size_t>(count));
      if (count > 0)
        std::memcpy(tensor.ints.data(), content.data() + data_start + begin, end - begin);
    } else {
      tensor.values.resize(static_cast<size_t>(count));
      if (count > 0)
        std::memcpy(tensor.values.data(), content.data() + data_start + begin, end - begin);
    }
    file.tensors.emplace(it.key(), std::move(tensor));
  }
  return file;
}

}  // namespace histocnn
