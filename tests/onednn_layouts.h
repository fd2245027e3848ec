// Test tensors moved between plain NCHW fp32 and the layout (and type) under
// test by oneDNN reorders, so a kernel's indexing is checked against
// oneDNN's own. Shared by the CPU kernels' tests.
#pragma once

#include <dnnl.hpp>
#include <vector>

namespace histocnn::testing {

class OneDnnLayouts {
 public:
  // An NCHW fp32 array (described by `plain`) in `md`'s layout and type.
  dnnl::memory to_layout(const std::vector<float>& nchw, const dnnl::memory::desc& plain,
                         const dnnl::memory::desc& md) {
    dnnl::memory from(plain, engine_, const_cast<float*>(nchw.data())), to(md, engine_);
    dnnl::reorder(from, to).execute(stream_, from, to);
    stream_.wait();
    return to;
  }
  // And back.
  std::vector<float> to_nchw(const dnnl::memory& m, const dnnl::memory::desc& plain) {
    std::vector<float> nchw(plain.get_size() / sizeof(float));
    dnnl::memory to(plain, engine_, nchw.data());
    dnnl::reorder(m, to).execute(stream_, const_cast<dnnl::memory&>(m), to);
    stream_.wait();
    return nchw;
  }
  const dnnl::engine& engine() const { return engine_; }

 private:
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
};

}  // namespace histocnn::testing
