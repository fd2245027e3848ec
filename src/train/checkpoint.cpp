#include "train/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <utility>
#include <vector>

#include "core/error.h"
#include "nn/safetensors.h"
#include "train/temperature.h"

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

// The parameters and batch-norm buffers of one model, names under `prefix`.
void put_model(SafetensorsFile& out, const std::string& prefix, const ModelFile& file) {
  put(out, prefix, file.params);
  for (const auto& info : file.buffers.layout) {
    NamedTensor t;
    t.shape = info.shape;
    t.values.assign(file.buffers.data(info), file.buffers.data(info) + info.size);
    out.tensors[prefix + info.name] = std::move(t);
    if (info.name.size() > 13 &&
        info.name.compare(info.name.size() - 13, 13, ".running_mean") == 0) {
      NamedTensor count;  // PyTorch's scalar int64 buffer
      count.ints = {file.buffers.batches_tracked};
      out.tensors[prefix + info.name.substr(0, info.name.size() - 13) + ".num_batches_tracked"] =
          count;
    }
  }
}

nlohmann::json label_scheme_json(const LabelScheme& s) {
  nlohmann::json j = {{"labels", s.name}, {"column", s.column}, {"classes", s.classes}};
  if (s.has_binary_view()) j["malignant"] = s.malignant;
  return j;
}

// The metadata every member of a file shares.
void put_metadata(SafetensorsFile& out, const ModelFile& file) {
  out.metadata["format"] = "pt";
  out.metadata["histocnn.spec"] = file.spec.text();
  out.metadata["histocnn.input"] = std::to_string(file.width) + "x" + std::to_string(file.height);
  out.metadata["histocnn.crop"] = file.crop;
  if (file.mpp_x > 0 && file.mpp_y > 0) {
    char mpp[64];
    std::snprintf(mpp, sizeof mpp, "%.9g,%.9g", file.mpp_x, file.mpp_y);
    out.metadata["histocnn.mpp"] = mpp;
  }
  out.metadata["histocnn.normalize"] = file.normalization.text();
  if (file.stain_target) out.metadata["histocnn.stain_target"] = file.stain_target->text();
  out.metadata["histocnn.classes"] = label_scheme_json(file.labels).dump();
  if (!file.trained.empty()) out.metadata["histocnn.trained"] = file.trained.dump();
}

nlohmann::json parse_json_metadata(const SafetensorsFile& in, const std::string& key,
                                   const std::string& path) {
  try {
    return nlohmann::json::parse(in.metadata.at(key));
  } catch (const std::exception&) {
    fail(path + ": " + key + " metadata is not valid JSON");
  }
}

// histocnn.classes, checked against the network's outputs.
LabelScheme read_label_scheme(const SafetensorsFile& in, const ModelSpec& spec,
                              const std::string& path) {
  LabelScheme s;
  if (in.metadata.count("histocnn.classes")) {
    const nlohmann::json j = parse_json_metadata(in, "histocnn.classes", path);
    const auto strings = [](const nlohmann::json& v) {
      return v.is_array() && std::all_of(v.begin(), v.end(), [](auto& e) { return e.is_string(); });
    };
    require(j.is_object() && j.value("labels", nlohmann::json()).is_string() &&
                j.value("column", nlohmann::json()).is_string() &&
                strings(j.value("classes", nlohmann::json())),
            path + ": histocnn.classes is not {labels, column, classes: [names]}");
    s.name = j["labels"];
    s.column = j["column"];
    s.classes = j["classes"].get<std::vector<std::string>>();
    s.malignant.clear();
    if (j.contains("malignant")) {
      const auto& m = j["malignant"];
      require(m.is_array() && m.size() == s.classes.size() &&
                  std::all_of(m.begin(), m.end(), [](auto& e) { return e.is_boolean(); }),
              path + ": histocnn.classes \"malignant\" is not one true/false per class");
      s.malignant = m.get<std::vector<bool>>();
    }
  }
  require(s.count() == spec.classes(),
          path + ": histocnn.classes names " + std::to_string(s.count()) +
              " classes but the network has " + std::to_string(spec.classes()) + " outputs");
  return s;
}

// The recipe's fields that eval, predict, slide and resume read, with the
// types they read them as: a forged or damaged file is an error naming the
// field, not a failed conversion further on.
void require_recipe_types(const nlohmann::json& t, const std::string& path) {
  using Json = nlohmann::json;
  static const std::vector<std::pair<const char*, bool (Json::*)() const>> fields = {
      {"data", &Json::is_string},
      {"split", &Json::is_string},
      {"val_split", &Json::is_string},
      {"malignant_classes", &Json::is_string},
      {"stain_normalize", &Json::is_string},
      {"precision", &Json::is_string},
      {"preset", &Json::is_string},
      {"folds", &Json::is_number_integer},
      {"fold", &Json::is_number_integer},
      {"fold_seed", &Json::is_number_unsigned},
      {"eval_crops", &Json::is_number_integer},
      {"eval_tta", &Json::is_boolean},
      {"max_background", &Json::is_number}};
  for (const auto& [field, check] : fields)
    require(!t.contains(field) || (t[field].*check)(),
            path + ": histocnn.trained \"" + field + "\" has the wrong type");
  if (t.contains("calibration")) {
    const nlohmann::json& c = t["calibration"];
    require(c.is_object() && c.contains("temperature") && c["temperature"].is_number() &&
                c["temperature"].get<double>() >= kMinTemperature &&
                c["temperature"].get<double>() <= kMaxTemperature,
            path + ": histocnn.trained \"calibration\" has no temperature in 0.05..20");
    require(
        !c.contains("method") || c["method"] == "grouped",
        path + ": histocnn.trained \"calibration\" has an unknown \"method\" (grouped or none)");
    const bool within_ok = c.contains("within") && c["within"].is_object() &&
                           c["within"].contains("temperature") &&
                           c["within"]["temperature"].is_number() &&
                           c["within"]["temperature"].get<double>() >= kMinTemperature &&
                           c["within"]["temperature"].get<double>() <= kMaxTemperature;
    require(!c.contains("tta") || c["tta"].is_boolean(),
            path + ": histocnn.trained \"calibration\" has a \"tta\" that is not true or false");
    require(!c.contains("method") || within_ok,
            path +
                ": histocnn.trained \"calibration\" is grouped but has no \"within\" "
                "temperature in 0.05..20");
  }
  require(!t.contains("eval_crops") ||
              (t["eval_crops"].get<int64_t>() >= 1 && t["eval_crops"].get<int64_t>() <= 4096),
          path + ": histocnn.trained \"eval_crops\" is not in 1..4096");
}

// The loop's state in a checkpoint, as resume reads it.
void require_state_types(const nlohmann::json& state, const std::string& path) {
  const std::string what = path + ": histocnn.state ";
  require(state.is_object(), what + "is not an object");
  require(!state.contains("step") ||
              (state["step"].is_number_integer() && state["step"].get<int64_t>() >= 0),
          what + "\"step\" is not a step count");
  require(!state.contains("epoch") ||
              (state["epoch"].is_number_integer() && state["epoch"].get<int64_t>() >= 0 &&
               state["epoch"].get<int64_t>() <= 1000000),
          what + "\"epoch\" is not an epoch count");
  require(!state.contains("history") || state["history"].is_array(),
          what + "\"history\" is not a list");
  for (const auto& row : state.value("history", nlohmann::json::array()))
    require(row.is_object(), what + "\"history\" holds a row that is not an object");
  require(!state.contains("best") || state["best"].is_object(), what + "\"best\" is not an object");
}

// Spec, sizes, normalisation, stain target and recipe; no tensors yet.
// A model without a stain_normalize entry (or a hand-made file) was Macenko's.
std::string stain_recipe_name(const ModelFile& m) {
  return m.trained.value("stain_normalize", std::string("macenko"));
}

ModelFile read_metadata(const SafetensorsFile& in, const std::string& path) {
  auto meta = [&](const std::string& key) {
    auto it = in.metadata.find(key);
    require(it != in.metadata.end(),
            path + ": not a histocnn model (metadata '" + key + "' missing)");
    return it->second;
  };
  ModelFile file;
  file.spec = parse_model_spec(meta("histocnn.spec"), path);
  // Sizes as `train` accepts them (--size, --crop: 16..8192 per side), so a
  // forged file cannot ask for a giant buffer or a zero-sized resize.
  auto size = [&](const std::string& text, int* w, int* h) {
    char tail = 0;
    return std::sscanf(text.c_str(), "%dx%d%c", w, h, &tail) == 2 && *w >= 16 && *h >= 16 &&
           *w <= 8192 && *h <= 8192;
  };
  const std::string input = meta("histocnn.input");
  require(size(input, &file.width, &file.height),
          path + ": histocnn.input '" + input + "' is not WxH with sides in 16..8192");
  file.crop = meta("histocnn.crop");
  int crop_w = 0, crop_h = 0;
  require(
      file.crop == "whole" || size(file.crop, &crop_w, &crop_h),
      path + ": histocnn.crop '" + file.crop + "' is not 'whole' or WxH with sides in 16..8192");
  if (in.metadata.count("histocnn.mpp")) {
    const std::string& mpp = in.metadata.at("histocnn.mpp");
    char tail = 0;
    require(std::sscanf(mpp.c_str(), "%lf,%lf%c", &file.mpp_x, &file.mpp_y, &tail) == 2 &&
                file.mpp_x > 0 && file.mpp_y > 0 && file.mpp_x < 1e4 && file.mpp_y < 1e4,
            path + ": histocnn.mpp '" + mpp + "' is not X,Y microns per pixel");
  }
  if (in.metadata.count("histocnn.normalize"))
    file.normalization = Normalization::parse(in.metadata.at("histocnn.normalize"), path);
  if (in.metadata.count("histocnn.stain_target"))
    file.stain_target = StainMatrix::parse(in.metadata.at("histocnn.stain_target"), path);
  file.labels = read_label_scheme(in, file.spec, path);
  if (in.metadata.count("histocnn.trained")) {
    file.trained = parse_json_metadata(in, "histocnn.trained", path);
    require(file.trained.is_object(), path + ": histocnn.trained metadata is not an object");
    require_recipe_types(file.trained, path);
  }
  if (file.stain_target)
    (void)StainRecipe::parse(stain_recipe_name(file), path + ": histocnn.trained stain_normalize");
  return file;
}

// The parameters and buffers under `prefix`, checked against the spec's shapes.
void take_model(const SafetensorsFile& in, const std::string& prefix, ModelFile& file,
                const std::string& path) {
  const NetworkShape shape = infer_shapes(file.spec, 1, file.height, file.width);
  // The metadata's sizes against the file's own tensors before any
  // allocation: a model whose metadata claims a larger input than its
  // weights fit is refused with the numbers, not with a multi-GB buffer.
  int64_t held = 0;
  for (const auto& [name, tensor] : in.tensors)
    if (name.rfind(prefix, 0) == 0) held += int64_t(tensor.values.size() + tensor.ints.size());
  require(shape.parameter_count() <= held,
          path + ": its metadata (network and input " + std::to_string(file.width) + "x" +
              std::to_string(file.height) + ") implies " + std::to_string(shape.parameter_count()) +
              " parameters, but the file holds " + std::to_string(held) +
              " values: the metadata does not match the weights");
  file.params = Parameters::zeros(shape);
  take(in, prefix, file.params, path);
  file.buffers = Buffers::initial(shape);
  for (const auto& info : file.buffers.layout) {
    auto it = in.tensors.find(prefix + info.name);
    require(it != in.tensors.end() && it->second.shape == info.shape && !it->second.is_int(),
            path + ": batch-norm buffer '" + prefix + info.name +
                "' is missing or has the wrong shape");
    std::copy(it->second.values.begin(), it->second.values.end(), file.buffers.data(info));
  }
  if (!file.buffers.empty()) {
    // Every layer counts the same steps; the first one's is read.
    const std::string& first = file.buffers.layout.front().name;  // bnK.running_mean
    const std::string name = prefix + first.substr(0, first.find('.')) + ".num_batches_tracked";
    auto it = in.tensors.find(name);
    require(it != in.tensors.end() && it->second.ints.size() == 1,
            path + ": batch-norm buffer '" + name + "' is missing");
    file.buffers.batches_tracked = it->second.ints[0];
  }
}

std::string member_prefix(size_t k) {
  return "members." + std::to_string(k) + ".";
}

}  // namespace

void save_model_file(const std::string& path, const ModelFile& file) {
  SafetensorsFile out;
  put_metadata(out, file);
  put_model(out, "", file);
  if (file.has_optimizer) {
    put(out, "optimizer.m.", file.m);
    put(out, "optimizer.v.", file.v);
    out.metadata["histocnn.state"] = file.state.dump();
  }
  write_safetensors(path, out);
}

StainRecipe ModelFile::stain_recipe() const {
  if (!stain_target) return {};  // nothing to normalise to (trained.stain_normalize "none")
  return StainRecipe::parse(stain_recipe_name(*this), "the model's stain_normalize");
}

std::string input_difference(const ModelFile& a, const ModelFile& b) {
  if (a.labels.classes != b.labels.classes || a.labels.malignant != b.labels.malignant)
    return "classes";
  if (a.spec.text() != b.spec.text()) return "network";
  if (a.width != b.width || a.height != b.height) return "input size";
  if (a.crop != b.crop) return "crop";
  if (a.mpp_x != b.mpp_x || a.mpp_y != b.mpp_y) return "physical scale (microns per pixel)";
  if (a.normalization.text() != b.normalization.text()) return "input normalisation";
  const auto stain = [](const ModelFile& m) {
    return m.stain_target ? m.stain_target->text() + " " + m.stain_recipe().name() : std::string();
  };
  if (stain(a) != stain(b)) return "stain normalisation";
  return "";
}

void save_ensemble_file(const std::string& path, const std::vector<ModelFile>& members) {
  require(members.size() >= 2, path + ": an ensemble needs at least two members");
  const ModelFile& first = members.front();
  nlohmann::json recipes = nlohmann::json::array();
  SafetensorsFile out;
  for (size_t k = 0; k < members.size(); ++k) {
    const std::string differs = input_difference(first, members[k]);
    require(differs.empty(), path + ": member " + std::to_string(k + 1) +
                                 " differs from member 1 in " + differs +
                                 " (an ensemble's members must see the same input)");
    const ModelFile& m = members[k];
    put_model(out, member_prefix(k), m);
    recipes.push_back(m.trained);
  }
  ModelFile shared = first;
  shared.trained["ensemble_members"] = members.size();
  put_metadata(out, shared);
  out.metadata["histocnn.ensemble"] = recipes.dump();
  write_safetensors(path, out);
}

Tempering ModelFile::tempering() const {
  if (!trained.contains("calibration")) return {};
  const nlohmann::json& c = trained["calibration"];
  Tempering t;
  t.temperature = c.value("temperature", 1.0);
  if (c.value("method", "") == "grouped") {
    t.grouped = true;
    t.within = c["within"].value("temperature", 1.0);
  }
  return t;
}

std::vector<Tempering> temperings_of(const std::vector<ModelFile>& models) {
  std::vector<Tempering> t;
  for (const ModelFile& m : models) t.push_back(m.tempering());
  return t;
}

std::vector<ModelFile> models_from(const SafetensorsFile& in, const std::string& path) {
  const ModelFile shared = read_metadata(in, path);
  if (!in.metadata.count("histocnn.ensemble")) return {model_from(in, path)};
  const nlohmann::json recipes = parse_json_metadata(in, "histocnn.ensemble", path);
  require(recipes.is_array() && recipes.size() >= 2,
          path + ": histocnn.ensemble metadata is not a list of at least two members");
  std::vector<ModelFile> members;
  for (size_t k = 0; k < recipes.size(); ++k) {
    ModelFile m = shared;
    require(recipes[k].is_object(),
            path + ": histocnn.ensemble member " + std::to_string(k + 1) + " is not an object");
    m.trained = recipes[k];
    require_recipe_types(m.trained, path);
    take_model(in, member_prefix(k), m, path);
    members.push_back(std::move(m));
  }
  return members;
}

ModelFile model_from(const SafetensorsFile& in, const std::string& path) {
  ModelFile file = read_metadata(in, path);
  if (in.metadata.count("histocnn.ensemble"))
    fail(path +
         ": an ensemble of several models; this needs one (eval and predict take an "
         "ensemble; each member's own model is in the training folder's memberK/)");
  take_model(in, "", file, path);
  if (in.metadata.count("histocnn.state")) {
    const NetworkShape shape = infer_shapes(file.spec, 1, file.height, file.width);
    file.has_optimizer = true;
    file.m = Parameters::zeros(shape);
    file.v = Parameters::zeros(shape);
    take(in, "optimizer.m.", file.m, path);
    take(in, "optimizer.v.", file.v, path);
    file.state = parse_json_metadata(in, "histocnn.state", path);
    require_state_types(file.state, path);
  }
  return file;
}

std::vector<ModelFile> load_models(const std::string& path) {
  require(std::filesystem::is_regular_file(path), path + ": model file not found");
  return models_from(read_safetensors(path), path);
}

ModelFile load_model_file(const std::string& path) {
  require(std::filesystem::is_regular_file(path), path + ": model file not found");
  return model_from(read_safetensors(path), path);
}

}  // namespace histocnn
