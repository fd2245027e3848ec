#include "train/checkpoint.h"

#include <filesystem>

#include "core/error.h"
#include "nn/safetensors.h"

namespace histocnn {
namespace {

void put(SafetensorsFile& out, const std::string& prefix, const Parameters& p) {
  for (const auto& info : p.layout) {
    NamedTensor t;
    t.shape = info.shape;
    t.values.assign(p.data(info), p.data(info) + info.size);
    out.tensors[prefix + info.name] = std::move(t);
  }
}

void take(const SafetensorsFile& in, const std::string& prefix, Parameters& p,
          const std::string& path) {
  for (const auto& info : p.layout) {
    auto it = in.tensors.find(prefix + info.name);
    require(it != in.tensors.end(), path + ": tensor '" + prefix + info.name + "' is missing");
    require(it->second.shape == info.shape && !it->second.is_int(),
            path + ": tensor '" + prefix + info.name + "' has the wrong shape for this model");
    std::copy(it->second.values.begin(), it->second.values.end(), p.data(info));
  }
}

}  // namespace

void save_model_file(const std::string& path, const ModelFile& file) {
  SafetensorsFile out;
  out.metadata["format"] = "pt";
  out.metadata["histocnn.spec"] = file.spec.text();
  out.metadata["histocnn.input"] = std::to_string(file.width) + "x" + std::to_string(file.height);
  out.metadata["histocnn.crop"] = file.crop;
  out.metadata["histocnn.normalize"] = file.normalization.text();
  if (file.stain_target) out.metadata["histocnn.stain_target"] = file.stain_target->text();
  if (!file.trained.empty()) out.metadata["histocnn.trained"] = file.trained.dump();
  put(out, "", file.params);
  for (const auto& info : file.buffers.layout) {
    NamedTensor t;
    t.shape = info.shape;
    t.values.assign(file.buffers.data(info), file.buffers.data(info) + info.size);
    out.tensors[info.name] = std::move(t);
    if (info.name.size() > 13 &&
        info.name.compare(info.name.size() - 13, 13, ".running_mean") == 0) {
      NamedTensor count;  // PyTorch's scalar int64 buffer
      count.ints = {file.buffers.batches_tracked};
      out.tensors[info.name.substr(0, info.name.size() - 13) + ".num_batches_tracked"] = count;
    }
  }
  if (file.has_optimizer) {
    put(out, "optimizer.m.", file.m);
    put(out, "optimizer.v.", file.v);
    out.metadata["histocnn.state"] = file.state.dump();
  }
  write_safetensors(path, out);
}

ModelFile load_model_file(const std::string& path) {
  require(std::filesystem::is_regular_file(path), path + ": model file not found");
  const SafetensorsFile in = read_safetensors(path);
  auto meta = [&](const std::string& key) {
    auto it = in.metadata.find(key);
    require(it != in.metadata.end(),
            path + ": not a histocnn model (metadata '" + key + "' missing)");
    return it->second;
  };
  ModelFile file;
  file.spec = parse_model_spec(meta("histocnn.spec"), path);
  const std::string input = meta("histocnn.input");
  require(std::sscanf(input.c_str(), "%dx%d", &file.width, &file.height) == 2,
          path + ": bad histocnn.input '" + input + "'");
  file.crop = meta("histocnn.crop");
  if (in.metadata.count("histocnn.normalize"))
    file.normalization = Normalization::parse(in.metadata.at("histocnn.normalize"), path);
  if (in.metadata.count("histocnn.stain_target"))
    file.stain_target = StainMatrix::parse(in.metadata.at("histocnn.stain_target"), path);
  if (in.metadata.count("histocnn.trained")) {
    try {
      file.trained = nlohmann::json::parse(in.metadata.at("histocnn.trained"));
    } catch (const std::exception&) {
      fail(path + ": histocnn.trained metadata is not valid JSON");
    }
    require(file.trained.is_object(), path + ": histocnn.trained metadata is not an object");
  }
  const NetworkShape shape = infer_shapes(file.spec, 1, file.height, file.width);
  file.params = Parameters::zeros(shape);
  take(in, "", file.params, path);
  file.buffers = Buffers::initial(shape);
  for (const auto& info : file.buffers.layout) {
    auto it = in.tensors.find(info.name);
    require(it != in.tensors.end() && it->second.shape == info.shape && !it->second.is_int(),
            path + ": batch-norm buffer '" + info.name + "' is missing or has the wrong shape");
    std::copy(it->second.values.begin(), it->second.values.end(), file.buffers.data(info));
  }
  if (!file.buffers.empty()) {
    // Every layer counts the same steps; the first one's is read.
    const std::string& first = file.buffers.layout.front().name;  // bnK.running_mean
    const std::string name = first.substr(0, first.find('.')) + ".num_batches_tracked";
    auto it = in.tensors.find(name);
    require(it != in.tensors.end() && it->second.ints.size() == 1,
            path + ": batch-norm buffer '" + name + "' is missing");
    file.buffers.batches_tracked = it->second.ints[0];
  }
  if (in.metadata.count("histocnn.state")) {
    file.has_optimizer = true;
    file.m = Parameters::zeros(shape);
    file.v = Parameters::zeros(shape);
    take(in, "optimizer.m.", file.m, path);
    take(in, "optimizer.v.", file.v, path);
    try {
      file.state = nlohmann::json::parse(in.metadata.at("histocnn.state"));
    } catch (const std::exception&) {
      fail(path + ": histocnn.state metadata is not valid JSON");
    }
  }
  return file;
}

}  // namespace histocnn
