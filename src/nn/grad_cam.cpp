#include "nn/grad_cam.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"
#include "nn/reference.h"

namespace histocnn {
namespace {

// One convolution block in inference mode: conv (+ batch norm) + ReLU; the
// ReLU map is returned, the pooled map replaces x.
std::vector<float> conv_block(const ConvShape& c, size_t index, const Parameters& params,
                              Buffers& buffers, std::vector<float>& x) {
  const std::string name = std::to_string(index + 1);
  const float* bias = c.batch_norm ? nullptr : params.data(params.info("conv" + name + ".bias"));
  std::vector<float> y(size_t(c.out_c) * c.conv_h * c.conv_w);
  reference::conv2d_forward(x.data(), params.data(params.info("conv" + name + ".weight")), bias,
                            y.data(), 1, c.in_c, c.in_h, c.in_w, c.out_c, c.kernel, c.pad);
  if (c.batch_norm) {
    const std::vector<float> raw = y;
    reference::batchnorm_forward_infer(
        raw.data(), params.data(params.info("bn" + name + ".weight")),
        params.data(params.info("bn" + name + ".bias")), buffers.running_mean(int(index)),
        buffers.running_var(int(index)), y.data(), 1, c.out_c, c.conv_h * c.conv_w);
  }
  reference::relu_forward(y.data(), y.data(), int64_t(y.size()));
  x.resize(size_t(c.out_c) * c.out_h * c.out_w);
  reference::maxpool_forward(y.data(), x.data(), 1, c.out_c, c.conv_h, c.conv_w, c.pool);
  return y;
}

}  // namespace

ClassActivationMap grad_cam(const NetworkShape& s, const Parameters& params,
                            const Buffers& buffers_in, const float* image, int target) {
  require(s.batch == 1, "grad_cam: needs a shape of batch 1");
  require(!s.convs.empty() && !s.denses.empty(), "grad_cam: needs a convolution and a dense layer");
  require(!s.has_batch_norm() || !buffers_in.empty(),
          "grad_cam: a batch-norm network needs its buffers");
  Buffers buffers = buffers_in;
  std::vector<float> x(image, image + size_t(s.channels) * s.height * s.width);
  std::vector<float> last_act;  // A: the last convolution's ReLU map
  for (size_t i = 0; i < s.convs.size(); ++i)
    last_act = conv_block(s.convs[i], i, params, buffers, x);
  const ConvShape& last = s.convs.back();
  const int pooled_hw = last.out_h * last.out_w;
  if (s.global_pool) {
    std::vector<float> means(size_t(last.out_c));
    reference::global_avgpool_forward(x.data(), means.data(), 1, last.out_c, pooled_hw);
    x = std::move(means);
  }
  // Dense layers, keeping each one's input and pre-activation for the way back.
  std::vector<std::vector<float>> inputs, pre;
  for (size_t i = 0; i < s.denses.size(); ++i) {
    const DenseShape& d = s.denses[i];
    const std::string name = "fc" + std::to_string(i + 1);
    inputs.push_back(x);
    x.assign(size_t(d.out), 0.0f);
    reference::dense_forward(inputs.back().data(), params.data(params.info(name + ".weight")),
                             params.data(params.info(name + ".bias")), x.data(), 1, d.in, d.out);
    pre.push_back(x);
    if (d.relu) reference::relu_forward(x.data(), x.data(), int64_t(x.size()));
  }
  ClassActivationMap map;
  const int classes = int(x.size());
  map.probs.resize(x.size());
  const float top = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += std::exp(double(x[size_t(k)]) - top);
  for (int k = 0; k < classes; ++k)
    map.probs[size_t(k)] = float(std::exp(double(x[size_t(k)]) - top) / sum);
  require(target >= -1 && target < classes, "grad_cam: no class " + std::to_string(target));
  map.target = target >= 0
                   ? target
                   : int(std::max_element(map.probs.begin(), map.probs.end()) - map.probs.begin());
  // d logit[target] / d A, back through the dense layers, the global pool
  // and the last pooling.
  std::vector<float> grad(size_t(classes), 0.0f);
  grad[size_t(map.target)] = 1.0f;
  for (size_t i = s.denses.size(); i-- > 0;) {
    const DenseShape& d = s.denses[i];
    const std::string name = "fc" + std::to_string(i + 1);
    if (d.relu)
      reference::relu_backward(pre[i].data(), grad.data(), grad.data(), int64_t(grad.size()));
    std::vector<float> dx(size_t(d.in)), dw(size_t(d.in) * d.out), db(size_t(d.out));
    reference::dense_backward(inputs[i].data(), params.data(params.info(name + ".weight")),
                              grad.data(), dx.data(), dw.data(), db.data(), 1, d.in, d.out);
    grad = std::move(dx);
  }
  if (s.global_pool) {
    std::vector<float> dx(size_t(last.out_c) * pooled_hw);
    reference::global_avgpool_backward(grad.data(), dx.data(), 1, last.out_c, pooled_hw);
    grad = std::move(dx);
  }
  std::vector<float> d_act(last_act.size());
  reference::maxpool_backward(last_act.data(), grad.data(), d_act.data(), 1, last.out_c,
                              last.conv_h, last.conv_w, last.pool);
  // alpha_k: the gradient's spatial mean; the map: ReLU(sum_k alpha_k A_k).
  const size_t hw = size_t(last.conv_h) * last.conv_w;
  map.width = last.conv_w;
  map.height = last.conv_h;
  map.values.assign(hw, 0.0f);
  for (int k = 0; k < last.out_c; ++k) {
    double alpha = 0;
    for (size_t p = 0; p < hw; ++p) alpha += d_act[size_t(k) * hw + p];
    alpha /= double(hw);
    map.weights.push_back(float(alpha));
    for (size_t p = 0; p < hw; ++p) map.values[p] += float(alpha * last_act[size_t(k) * hw + p]);
  }
  for (float& v : map.values) v = std::max(v, 0.0f);
  return map;
}

}  // namespace histocnn
