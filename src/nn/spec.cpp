#include "nn/spec.h"

#include <charconv>
#include <sstream>

#include "core/checked.h"
#include "core/error.h"

namespace histocnn {
namespace {

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

template <typename T>
T parse_number(const std::string& text, const std::string& where) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) fail(where + ": '" + text + "' is not a valid number");
  return value;
}

}  // namespace

ModelSpec parse_model_spec(const std::string& text, const std::string& origin) {
  ModelSpec spec;
  std::string normalized = text;
  for (char& c : normalized)
    if (c == ';' || c == '\r') c = '\n';
  std::istringstream lines(normalized);
  int line_no = 0;
  for (std::string line; std::getline(lines, line);) {
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    auto words = split_words(line);
    if (words.empty()) continue;
    const std::string where = origin + " layer " + std::to_string(line_no);
    LayerSpec layer{};
    const std::string& kind = words[0];
    if (kind == "conv") {
      layer.kind = LayerSpec::Kind::kConv;
      require(words.size() >= 2, where + ": 'conv' needs a filter count");
      layer.conv.filters = parse_number<int>(words[1], where);
      for (size_t i = 2; i < words.size(); ++i) {
        if (words[i] == "bn") {
          layer.conv.batch_norm = true;
          continue;
        }
        auto eq = words[i].find('=');
        require(eq != std::string::npos, where + ": expected key=value, got '" + words[i] + "'");
        const std::string key = words[i].substr(0, eq), value = words[i].substr(eq + 1);
        if (key == "kernel")
          layer.conv.kernel = parse_number<int>(value, where);
        else if (key == "pool")
          layer.conv.pool = parse_number<int>(value, where);
        else if (key == "pad") {
          require(value == "valid" || value == "same", where + ": pad must be valid or same");
          layer.conv.pad_same = value == "same";
        } else
          fail(where + ": unknown conv option '" + key + "' (kernel, pool, pad, bn)");
      }
      require(layer.conv.filters > 0 && layer.conv.filters <= 4096,
              where + ": filters must be in 1..4096");
      require(layer.conv.kernel > 0 && layer.conv.kernel <= 15,
              where + ": kernel must be in 1..15");
      require(layer.conv.pool >= 1 && layer.conv.pool <= 8, where + ": pool must be in 1..8");
    } else if (kind == "dense") {
      layer.kind = LayerSpec::Kind::kDense;
      require(words.size() == 2, where + ": 'dense' takes exactly one unit count");
      layer.dense.units = parse_number<int>(words[1], where);
      require(layer.dense.units > 0 && layer.dense.units <= 1 << 20,
              where + ": units must be positive");
    } else if (kind == "dropout") {
      layer.kind = LayerSpec::Kind::kDropout;
      require(words.size() == 2, where + ": 'dropout' takes exactly one rate");
      layer.dropout = parse_number<float>(words[1], where);
      require(layer.dropout >= 0.0f && layer.dropout < 1.0f, where + ": rate must be in [0, 1)");
    } else if (kind == "gap") {
      layer.kind = LayerSpec::Kind::kGlobalPool;
      require(words.size() == 1, where + ": 'gap' takes no options");
    } else {
      fail(where + ": unknown layer '" + kind + "' (conv, gap, dense, dropout)");
    }
    spec.layers.push_back(layer);
  }
  // Structure: convs first, then [gap], then dense/dropout; ends in dense 2.
  bool seen_dense = false, seen_gap = false, seen_conv = false;
  for (const auto& layer : spec.layers) {
    if (layer.kind == LayerSpec::Kind::kConv) {
      require(!seen_dense, origin + ": conv layers must come before dense layers");
      require(!seen_gap, origin + ": conv layers must come before 'gap'");
      seen_conv = true;
    }
    if (layer.kind == LayerSpec::Kind::kGlobalPool) {
      require(seen_conv && !seen_dense && !seen_gap,
              origin + ": 'gap' goes once, between the conv layers and the dense layers");
      seen_gap = true;
    }
    if (layer.kind == LayerSpec::Kind::kDense) seen_dense = true;
    if (layer.kind == LayerSpec::Kind::kDropout)
      require(seen_dense, origin + ": dropout must follow a dense layer");
  }
  require(!spec.layers.empty() && spec.layers.back().kind == LayerSpec::Kind::kDense &&
              spec.layers.back().dense.units >= 2 && spec.layers.back().dense.units <= kMaxClasses,
          origin + ": the last layer must be 'dense K', K the number of classes (2.." +
              std::to_string(kMaxClasses) + "; 2 for benign/malignant)");
  return spec;
}

int ModelSpec::classes() const {
  return layers.back().dense.units;
}

ModelSpec with_classes(ModelSpec spec, int classes) {
  require(classes >= 2 && classes <= kMaxClasses, "a network needs 2.." +
                                                      std::to_string(kMaxClasses) +
                                                      " classes, not " + std::to_string(classes));
  spec.layers.back().dense.units = classes;
  return spec;
}

ModelSpec default_model_spec() {
  return parse_model_spec(
      "conv 32 kernel=3 pool=2\nconv 32 kernel=3 pool=2\nconv 64 kernel=3 pool=2\n"
      "dense 64\ndropout 0.5\ndense 2\n",
      "default model");
}

std::string ModelSpec::text() const {
  std::ostringstream out;
  for (const auto& layer : layers) {
    switch (layer.kind) {
      case LayerSpec::Kind::kConv:
        out << "conv " << layer.conv.filters << " kernel=" << layer.conv.kernel
            << " pool=" << layer.conv.pool << (layer.conv.pad_same ? " pad=same" : "")
            << (layer.conv.batch_norm ? " bn" : "") << "\n";
        break;
      case LayerSpec::Kind::kGlobalPool:
        out << "gap\n";
        break;
      case LayerSpec::Kind::kDense:
        out << "dense " << layer.dense.units << "\n";
        break;
      case LayerSpec::Kind::kDropout:
        out << "dropout " << layer.dropout << "\n";
        break;
    }
  }
  return out.str();
}

NetworkShape infer_shapes(const ModelSpec& spec, int batch, int height, int width, int channels) {
  require(batch > 0, "--batch: must be at least 1, got " + std::to_string(batch));
  NetworkShape net{batch, channels, height, width, {}, {}};
  int c = channels, h = height, w = width;
  int features = 0;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const auto& layer = spec.layers[i];
    if (layer.kind == LayerSpec::Kind::kConv) {
      ConvShape s{};
      s.in_c = c, s.in_h = h, s.in_w = w;
      s.kernel = layer.conv.kernel;
      s.pad = layer.conv.pad_same ? layer.conv.kernel / 2 : 0;
      s.pool = layer.conv.pool;
      s.batch_norm = layer.conv.batch_norm;
      s.out_c = layer.conv.filters;
      s.conv_h = h + 2 * s.pad - s.kernel + 1;
      s.conv_w = w + 2 * s.pad - s.kernel + 1;
      s.out_h = s.conv_h / s.pool;
      s.out_w = s.conv_w / s.pool;
      require(s.out_h >= 1 && s.out_w >= 1,
              "input size " + std::to_string(height) + "x" + std::to_string(width) +
                  " is too small for the model: conv layer " +
                  std::to_string(net.convs.size() + 1) + " would have an empty output");
      // Every tensor of the step must be addressable: 2^40 elements at most.
      checked_product({batch, s.out_c, s.conv_h, s.conv_w},
                      "--batch " + std::to_string(batch) + " at " + std::to_string(height) + "x" +
                          std::to_string(width) + ": conv layer " +
                          std::to_string(net.convs.size() + 1) + "'s output",
                      int64_t(1) << 40);
      net.convs.push_back(s);
      c = s.out_c, h = s.out_h, w = s.out_w;
    } else if (layer.kind == LayerSpec::Kind::kDense) {
      const int in =
          !net.denses.empty() ? net.denses.back().out
          : net.global_pool
              ? c
              : int(checked_product({c, h, w}, "the input of the first dense layer", INT32_MAX));
      checked_product({in, layer.dense.units},
                      "dense layer " + std::to_string(net.denses.size() + 1) + "'s weights",
                      int64_t(1) << 36);
      checked_product({batch, layer.dense.units}, "--batch " + std::to_string(batch),
                      int64_t(1) << 40);
      net.denses.push_back({in, layer.dense.units, true, 0.0f});
      features = layer.dense.units;
    } else if (layer.kind == LayerSpec::Kind::kGlobalPool) {
      net.global_pool = true;
    } else {
      net.denses.back().dropout_after = layer.dropout;
    }
  }
  (void)features;
  net.denses.back().relu = false;
  return net;
}

bool NetworkShape::has_batch_norm() const {
  for (const auto& c : convs)
    if (c.batch_norm) return true;
  return false;
}

int64_t NetworkShape::parameter_count() const {
  int64_t n = 0;
  for (const auto& c : convs)
    n += int64_t(c.out_c) * c.in_c * c.kernel * c.kernel + (c.batch_norm ? 2 : 1) * c.out_c;
  for (const auto& d : denses) n += int64_t(d.out) * d.in + d.out;
  return n;
}

double NetworkShape::forward_flops() const {
  double f = 0;
  for (const auto& c : convs)
    f += 2.0 * batch * c.out_c * c.conv_h * c.conv_w * double(c.in_c) * c.kernel * c.kernel;
  for (const auto& d : denses) f += 2.0 * batch * d.in * double(d.out);
  return f;
}

double NetworkShape::training_flops() const {
  // Forward + weight gradient + input gradient (the first layer needs no
  // input gradient).
  double f = 0;
  bool first = true;
  for (const auto& c : convs) {
    const double one =
        2.0 * batch * c.out_c * c.conv_h * c.conv_w * double(c.in_c) * c.kernel * c.kernel;
    f += one * (first ? 2 : 3);
    first = false;
  }
  for (const auto& d : denses) f += 3 * 2.0 * batch * d.in * double(d.out);
  return f;
}

std::vector<ParamInfo> parameter_layout(const NetworkShape& shape) {
  std::vector<ParamInfo> params;
  int64_t offset = 0;
  auto add = [&](std::string name, std::vector<int64_t> dims, int fan_in, int fan_out, bool bias,
                 bool one = false) {
    int64_t size = 1;
    for (auto d : dims) size *= d;
    params.push_back({std::move(name), std::move(dims), offset, size, fan_in, fan_out, bias, one});
    // Keep every tensor 64-byte aligned inside the flat vector.
    offset += (size + 15) / 16 * 16;
  };
  for (size_t i = 0; i < shape.convs.size(); ++i) {
    const auto& c = shape.convs[i];
    const int k2 = c.kernel * c.kernel;
    const std::string base = "conv" + std::to_string(i + 1);
    add(base + ".weight", {c.out_c, c.in_c, c.kernel, c.kernel}, c.in_c * k2, c.out_c * k2, false);
    if (!c.batch_norm) {
      add(base + ".bias", {c.out_c}, c.in_c * k2, c.out_c * k2, true);
    } else {
      const std::string bn = "bn" + std::to_string(i + 1);
      add(bn + ".weight", {c.out_c}, 1, 1, false, /*one=*/true);
      add(bn + ".bias", {c.out_c}, 1, 1, true);
    }
  }
  for (size_t i = 0; i < shape.denses.size(); ++i) {
    const auto& d = shape.denses[i];
    const std::string base = "fc" + std::to_string(i + 1);
    add(base + ".weight", {d.out, d.in}, d.in, d.out, false);
    add(base + ".bias", {d.out}, d.in, d.out, true);
  }
  return params;
}

std::vector<ParamInfo> buffer_layout(const NetworkShape& shape) {
  std::vector<ParamInfo> buffers;
  int64_t offset = 0;
  for (size_t i = 0; i < shape.convs.size(); ++i) {
    const auto& c = shape.convs[i];
    if (!c.batch_norm) continue;
    const std::string bn = "bn" + std::to_string(i + 1);
    buffers.push_back({bn + ".running_mean", {c.out_c}, offset, c.out_c, 1, 1, true, false});
    offset += (c.out_c + 15) / 16 * 16;
    buffers.push_back({bn + ".running_var", {c.out_c}, offset, c.out_c, 1, 1, false, true});
    offset += (c.out_c + 15) / 16 * 16;
  }
  return buffers;
}

}  // namespace histocnn
