#include "memory/memory_config.h"

#include <toml++/toml.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"

namespace histocnn {
namespace {

void check_allocator(const std::string& value, const std::string& source) {
  require(value == "direct" || value == "pool" || value == "async" || value == "plan",
          source + ": allocator '" + value + "' is not one of direct, pool, async, plan");
}

void check_pool(double value, const std::string& source) {
  require(std::isfinite(value) && value >= 0,
          source + ": gpu_mem_pool must be 0 (off), a fraction in (0, 1] or a size in MB (> 1)");
}

double parse_double(const std::string& text, const std::string& source) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  require(!text.empty() && end && *end == '\0', source + ": '" + text + "' is not a number");
  return v;
}

struct Layer {
  std::optional<std::string> allocator;
  std::optional<double> pool;
  std::string name;
};

Layer from_env(const char* value) {
  Layer layer{{}, {}, "HISTOCNN_FLAGS"};
  if (!value) return layer;
  std::stringstream in(value);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    require(eq != std::string::npos, "HISTOCNN_FLAGS: '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq), v = item.substr(eq + 1);
    if (key == "allocator") {
      check_allocator(v, "HISTOCNN_FLAGS");
      layer.allocator = v;
    } else if (key == "gpu_mem_pool" || key == "lib.cnmem") {
      layer.pool = parse_double(v, "HISTOCNN_FLAGS " + key);
      check_pool(*layer.pool, "HISTOCNN_FLAGS");
    } else {
      fail("HISTOCNN_FLAGS: unknown key '" + key + "' (allocator, gpu_mem_pool)");
    }
  }
  return layer;
}

Layer from_file(const std::string& path) {
  Layer layer{{}, {}, path};
  if (path.empty() || !std::filesystem::exists(path)) return layer;
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    fail(path + ": invalid TOML at line " + std::to_string(e.source().begin.line) + ": " +
         std::string(e.description()));
  }
  if (auto gpu = table["gpu"].as_table()) {
    for (const auto& [key, node] : *gpu) {
      const std::string k(key.str());
      if (k == "allocator") {
        auto v = node.value<std::string>();
        require(v.has_value(), path + ": [gpu] allocator must be a string");
        check_allocator(*v, path);
        layer.allocator = *v;
      } else if (k == "mem_pool" || k == "gpu_mem_pool") {
        auto v = node.value<double>();
        require(v.has_value(), path + ": [gpu] mem_pool must be a number");
        check_pool(*v, path);
        layer.pool = *v;
      } else {
        fail(path + ": [gpu] unknown key '" + k + "' (allocator, mem_pool)");
      }
    }
  }
  return layer;
}

}  // namespace

MemoryConfig resolve_memory_config(const MemoryFlags& flags, const char* env_value,
                                   const std::string& file) {
  if (flags.allocator) check_allocator(*flags.allocator, "--allocator");
  if (flags.gpu_mem_pool) check_pool(*flags.gpu_mem_pool, "--gpu-mem-pool");
  const Layer layers[3] = {
      {flags.allocator, flags.gpu_mem_pool, "flag"}, from_env(env_value), from_file(file)};
  MemoryConfig config;
  config.source = "default";
  // The first source that says anything about the allocator decides it; a
  // pool size from the same or a lower-precedence source sizes the pool.
  for (const Layer& layer : layers) {
    if (layer.allocator || layer.pool) {
      if (layer.allocator)
        config.allocator = *layer.allocator;
      else
        config.allocator = *layer.pool == 0 ? "direct" : "pool";  // CNMeM's switch
      config.source = layer.name;
      break;
    }
  }
  for (const Layer& layer : layers)
    if (layer.pool) {
      if (*layer.pool > 0) config.gpu_mem_pool = *layer.pool;
      break;
    }
  return config;
}

MemoryConfig resolve_memory_config(const MemoryFlags& flags) {
  const char* path = std::getenv("HISTOCNN_CONFIG");
  return resolve_memory_config(flags, std::getenv("HISTOCNN_FLAGS"), path ? path : "histocnn.toml");
}

std::string MemoryConfig::to_string() const {
  std::ostringstream out;
  out << "allocator " << allocator;
  if (allocator == "pool")
    out << " (reserve " << gpu_mem_pool << (gpu_mem_pool <= 1 ? " of device memory" : " MB") << ")";
  out << " [from " << source << "]";
  return out.str();
}

}  // namespace histocnn
